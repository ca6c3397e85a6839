-- Help text of the datasets (lua/l_dataset.c): see lua/fmnist/help.lua.
local doc = require("fmnist.help").section("Datasets", 30, [[
A dataset holds images (kept as bytes, handed out as floats in [0, 1]) and their labels, the class
ids 0..K-1 (K = ds.num_classes: Fashion-MNIST's ten, or up to 256 for a dataset made from tensors).
fm.load reads files, fm.dataset takes tensors, fm.concat and ds:concat join datasets; subsets,
shuffles and splits are views that share the pixels. Class i's name is ds.classes[i + 1]; where the
images came from is in ds.source and print(ds).]])

doc {
  name = "fm.load",
  sig = "fm.load(what [, opts]) -> Dataset",
  text = [[
Loads a set of images: "train" or "test" (looked for in $FMNIST_DATA, ./data, then
/usr/share/datasets/fashion-mnist, as IDX files, raw or .gz, or the Kaggle CSV
fashion-mnist_train.csv / fashion-mnist_test.csv), an IDX images file (its labels file beside it,
by the standard name, or opts.labels), or a CSV file with one image a row. A CSV's header decides
which column is the label: the one named "label" (any case), or the only one not named like
pixelN; the pixel columns are placed by their numbers (pixel1..pixelP or pixel0..), and P must
make a square image. Without a header the label comes first. Raises naming the file, the line and
what is wrong (no label column, two candidates, a pixel missing or named twice, a row of another
length), and where "train" and "test" were looked for.

The files read are in ds.source and print(ds). When "train" and "test" come from different
places (say $FMNIST_DATA holds only a training CSV, so the test set is the system-wide one),
ds.source.warning says so and a warning goes to stderr, once.]],
  options = { { "labels", "the labels file of an IDX images file, when it is not the standard name beside it" } },
  example = [[
local test = fm.load("test")
print(#test, test.classes[1])   --> 10000 T-shirt/top
print(test.source.split, test.source.kind, #test.source.files)   --> test idx 2
]],
  needs = "dataset",
  see = { "Dataset", "Dataset.source", "fm.dataset", "Dataset:split" },
}

doc {
  name = "fm.dataset",
  sig = "fm.dataset(images, labels [, opts]) -> Dataset",
  text = [[
A dataset made from tensors, to train and evaluate on one's own images. images is N x 784 (28x28
images, one a row), N x H x W or N x H x W x 1, of floats in [0, 1] or integers 0-255: when any
value is above 1, the pixels are taken as integers 0-255 (opts.range says which instead). labels
is a tensor or a list of N class ids 0..K-1, where K is 10 (Fashion-MNIST's classes) or the number
of names in opts.classes (up to 256). The pixels are copied into the dataset as bytes (floats in
[0, 1] rounded to the nearest of 256 levels), so it is a dataset like a loaded one: every method,
fit, evaluate and predict take it. The models take 28x28 images; a model with 10 outputs refuses
labels of 10 and above, naming the first.
Raises naming the first bad value (images[i][j] is NaN, negative, above the range, a fraction
where integers are expected; labels[i] is not a class id), a wrong shape, or an unknown option.
A list of labels is read raw: its metatable is not used.]],
  options = {
    { "classes", "the class names, a list of 1 to 256 different names (or how many classes: names \"0\", \"1\", ...); default Fashion-MNIST's ten" },
    { "range", "1: pixels are numbers in [0, 1]; 255: integers 0-255 (default: 255 when any value is above 1)" },
    { "name", "what print(ds) calls it (default \"dataset\")" },
  },
  example = [[
local x = fm.zeros(4, 28, 28)
x:set(2, 14, 14, 255)
local ds = fm.dataset(x, {0, 1, 2, 1}, {classes = {"dot", "ring", "bar"}, name = "drawn"})
print(ds)   --> fmnist.Dataset 'drawn': 4 images of 28x28, 3 classes, made from tensors (pixels given as integers 0-255)
print(ds:counts()[2], ds.classes[3], ds:image(2):get(14, 14))   --> 2 bar 1.0
]],
  see = { "Dataset", "Dataset:concat", "fm.concat" },
}

doc {
  name = "fm.concat",
  sig = "fm.concat{ds1, ds2, ...} -> Dataset",
  text = [[
The images of the datasets of a list, one after the other (each in its view order), in a new
dataset with pixels of its own. They must have images of one size and the same classes (as many,
with the same names). ds.source lists the parts it was joined from.]],
  example = [[
local a = fm.dataset(fm.zeros(2, 28, 28), {0, 1})
local b = fm.dataset(fm.zeros(3, 28, 28), {2, 2, 9})
local ab = fm.concat{a, b}
print(#ab, ab:label(5), ab.source.kind)   --> 5 9 concat
]],
  see = { "Dataset:concat", "fm.dataset" },
}

doc {
  name = "fm.classes",
  sig = "fm.classes",
  text = [[The ten class names, class id c at fm.classes[c + 1] (the same list as ds.classes).]],
  example = [[
print(fm.classes[1], fm.classes[10])   --> T-shirt/top Ankle boot
]],
}

doc {
  name = "Dataset",
  class = "fmnist.Dataset",
  sig = "Dataset (fmnist.Dataset)",
  text = [[
A set of grayscale images (28x28 for Fashion-MNIST) and their labels, from fm.load, fm.dataset or
fm.concat, or from another dataset's subset, shuffle or split (views that share the pixels:
splitting 60,000 images costs a little memory, not 47 MB). #ds is the number of images; print(ds)
names it and says where its images came from (and, on a second line, any warning about them).]],
  example = [[
local test = fm.load("test")
print(test)   --> fmnist.Dataset 'test': 10000 images of 28x28, 10 classes, from /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz
]],
  needs = "dataset",
}

doc {
  name = "Dataset.classes",
  sig = "ds.classes",
  text = [[
The class names, class id c at ds.classes[c + 1]: fm.classes for Fashion-MNIST's ten, else a copy
of the names the dataset was made with.]],
  example = [[
local test = fm.load("test")
print(#test.classes, test.classes[test:label(1) + 1])   --> 10 Ankle boot
]],
  needs = "dataset",
}

doc {
  name = "Dataset.num_classes",
  sig = "ds.num_classes",
  text = [[
How many classes the dataset has (its labels are 0..num_classes-1): 10 for a loaded set, the
number of names given to fm.dataset otherwise. A view keeps the classes of its dataset, even those
without images in it.]],
  example = [[
local ds = fm.dataset(fm.zeros(3, 28, 28), {0, 1, 11}, {classes = 12})
print(ds.num_classes, #ds:subset{class = 1})   --> 12 1
]],
}

doc {
  name = "Dataset.source",
  sig = "ds.source",
  text = [[
Where the images came from, a table (a copy: changing it changes nothing): kind ("idx", "csv",
"tensors" or "concat"); files, the list of files read; images and labels (IDX), or file,
header and label_column (CSV); split and dir for fm.load("train") and fm.load("test"); warning
when the training and test sets come from different places; parts (the sources joined) for
concat. Views share the source of the dataset they came from.]],
  example = [[
local test = fm.load("test")
print(test.source.images)   --> /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
print(test:subset(1, 5).source.dir, test.source.warning)   --> /usr/share/datasets/fashion-mnist nil
]],
  needs = "dataset",
  see = { "fm.load" },
}

doc {
  name = "Dataset:labels",
  sig = "ds:labels() -> Tensor",
  text = [[The labels (class ids 0..K-1) of all images, as a 1-D tensor.]],
  example = [[
local test = fm.load("test")
print(test:labels():numel(), test:labels():get(1))   --> 10000 9.0
]],
  needs = "dataset",
}

doc {
  name = "Dataset:label",
  sig = "ds:label(i) -> integer",
  text = [[The label (class id 0..K-1) of image i (1-based).]],
  example = [[
print(fm.load("test"):label(1))   --> 9
]],
  needs = "dataset",
}

doc {
  name = "Dataset:images",
  sig = "ds:images([first, last]) -> Tensor",
  text = [[
Images first..last (all by default) as an N x 784 tensor (N x H*W for other sizes) of floats in
[0, 1], one image a row (what models take).]],
  example = [[
local x = fm.load("test"):images(1, 5)
print(x:shape()[1], x:shape()[2], x:max() <= 1)   --> 5 784 true
]],
  needs = "dataset",
}

doc {
  name = "Dataset:image",
  sig = "ds:image(i) -> Tensor",
  text = [[Image i (1-based) as a 28 x 28 (H x W) tensor in [0, 1]. Raises naming the range when i is out of it.]],
  example = [[
print(table.concat(fm.load("test"):image(1):shape(), "x"))   --> 28x28
]],
  needs = "dataset",
}

doc {
  name = "Dataset:counts",
  sig = "ds:counts() -> {n0, ..., n9}",
  text = [[How many images of each class: a list of ds.num_classes (ten for Fashion-MNIST), class id c at position c + 1.]],
  example = [[
local c = fm.load("test"):counts()
print(#c, c[1])   --> 10 1000
]],
  needs = "dataset",
}

doc {
  name = "Dataset:mean_image",
  sig = "ds:mean_image([class]) -> Tensor",
  text = [[The mean of the images (of one class id, or all), 28 x 28. Raises naming the class when it has no images here.]],
  example = [[
local m = fm.load("test"):mean_image(1)
print(m:shape()[1], m:max() > 0.5)   --> 28 true
]],
  needs = "dataset",
}

doc {
  name = "Dataset:std_image",
  sig = "ds:std_image([class]) -> Tensor",
  text = [[The per-pixel standard deviation of the images (of one class id, or all), 28 x 28.]],
  example = [[
print(fm.load("test"):std_image():shape()[2])   --> 28
]],
  needs = "dataset",
}

doc {
  name = "Dataset:subset",
  sig = "ds:subset(first, last) | ds:subset{i, j, ...} | ds:subset{class = c} | ds:subset{n = k} -> Dataset",
  text = [[
A view of some images: a range (1-based, inclusive), a list or tensor of indices, the images of
one class id, or the first k.]],
  example = [[
local test = fm.load("test")
print(#test:subset(1, 10), #test:subset{class = 3}, #test:subset{n = 7})   --> 10 1000 7
]],
  needs = "dataset",
}

doc {
  name = "Dataset:shuffle",
  sig = "ds:shuffle([seed]) -> Dataset",
  text = [[A view of the same images in a random order (the seed, or one drawn from fm.seed's generator).]],
  example = [[
local test = fm.load("test")
print(#test:shuffle(1), test:shuffle(1):label(1) == test:shuffle(1):label(1))   --> 10000 true
]],
  needs = "dataset",
}

doc {
  name = "Dataset:split",
  sig = "ds:split(fraction [, opts]) -> first, rest",
  text = [[
Two views: a share `fraction` of the images and the others. Shuffled first with the seed (unless
shuffle = false); stratify = true keeps the share of every class the same in both.]],
  options = {
    { "seed", "seed of the shuffle (default: drawn from fm.seed's generator)" },
    { "stratify", "true: the same fraction of every class in both parts (default false)" },
    { "shuffle", "false: split in the order the images are in (default true)" },
  },
  example = [[
local fit, val = fm.load("test"):split(0.9, {seed = 1, stratify = true})
print(#fit, #val, val:counts()[1])   --> 9000 1000 100
]],
  needs = "dataset",
}

doc {
  name = "Dataset:batches",
  sig = "for x, y in ds:batches([size [, opts]]) do ... end",
  text = [[
Iterates over the images in batches of `size` (default 32; the last may be smaller): x is
size x 784, y the labels. opts.shuffle = true goes through them in a random order (opts.seed).]],
  options = {
    { "shuffle", "true: a random order (default false)" },
    { "seed", "seed of that order" },
  },
  example = [[
local seen = 0
for x, y in fm.load("test"):subset(1, 70):batches(32) do seen = seen + x:shape()[1] end
print(seen)   --> 70
]],
  needs = "dataset",
}

doc {
  name = "Dataset:concat",
  sig = "ds:concat(other, ...) -> Dataset",
  text = [[
ds and the other datasets joined, one after the other, in a new dataset with pixels of its own
(fm.concat{ds, other, ...} is the same). They must have images of one size and the same classes.
With no other dataset, a copy of ds (a view becomes a dataset of its own).]],
  example = [[
local ds = fm.dataset(fm.ones(2, 28, 28), {3, 4})
local twice = ds:concat(ds)
print(#twice, twice:label(3), twice)   --> 4 3 fmnist.Dataset 'dataset + dataset': 4 images of 28x28, 10 classes (2 with images here), joined from 2 parts
]],
  see = { "fm.concat", "fm.dataset" },
}
