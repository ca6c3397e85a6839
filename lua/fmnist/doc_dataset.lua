-- Help text of the datasets (lua/l_dataset.c): see lua/fmnist/help.lua.
local doc = require("fmnist.help").section("Datasets", 30, [[
A dataset holds images (kept as bytes, handed out as floats in [0, 1]) and their labels, the class
ids 0..9. Subsets, shuffles and splits are views that share the pixels. Class i's name is
ds.classes[i + 1].]])

doc {
  name = "fm.load",
  sig = "fm.load(what [, opts]) -> Dataset",
  text = [[
Loads a set of images: "train" or "test" (looked for in $FMNIST_DATA, ./data, then
/usr/share/datasets/fashion-mnist, as IDX files, raw or .gz, or the Kaggle CSV
fashion-mnist_train.csv), an IDX images file (its labels file beside it, by the standard name,
or opts.labels), or a CSV file in the Kaggle layout (label,pixel1,...,pixel784). Raises naming the
file and what is wrong with it, and where "train" and "test" were looked for.]],
  options = { { "labels", "the labels file of an IDX images file, when it is not the standard name beside it" } },
  example = [[
local test = fm.load("test")
print(#test, test.classes[1])   --> 10000 T-shirt/top
]],
  needs = "dataset",
  see = { "Dataset", "Dataset:split" },
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
A set of 28x28 grayscale images and their labels, from fm.load or from another dataset's subset,
shuffle or split (views that share the pixels: splitting 60,000 images costs a little memory, not
47 MB). #ds is the number of images; print(ds) names it.]],
  example = [[
local test = fm.load("test")
print(test)   --> fmnist.Dataset 'test': 10000 images of 28x28, 10 classes
]],
  needs = "dataset",
}

doc {
  name = "Dataset.classes",
  sig = "ds.classes",
  text = [[The ten class names, class id c at ds.classes[c + 1].]],
  example = [[
local test = fm.load("test")
print(#test.classes, test.classes[test:label(1) + 1])   --> 10 Ankle boot
]],
  needs = "dataset",
}

doc {
  name = "Dataset:labels",
  sig = "ds:labels() -> Tensor",
  text = [[The labels (class ids 0..9) of all images, as a 1-D tensor.]],
  example = [[
local test = fm.load("test")
print(test:labels():numel(), test:labels():get(1))   --> 10000 9.0
]],
  needs = "dataset",
}

doc {
  name = "Dataset:label",
  sig = "ds:label(i) -> integer",
  text = [[The label (class id 0..9) of image i (1-based).]],
  example = [[
print(fm.load("test"):label(1))   --> 9
]],
  needs = "dataset",
}

doc {
  name = "Dataset:images",
  sig = "ds:images([first, last]) -> Tensor",
  text = [[
Images first..last (all by default) as an N x 784 tensor of floats in [0, 1], one image a row
(what models take).]],
  example = [[
local x = fm.load("test"):images(1, 5)
print(x:shape()[1], x:shape()[2], x:max() <= 1)   --> 5 784 true
]],
  needs = "dataset",
}

doc {
  name = "Dataset:image",
  sig = "ds:image(i) -> Tensor",
  text = [[Image i (1-based) as a 28 x 28 tensor in [0, 1]. Raises naming the range when i is out of it.]],
  example = [[
print(table.concat(fm.load("test"):image(1):shape(), "x"))   --> 28x28
]],
  needs = "dataset",
}

doc {
  name = "Dataset:counts",
  sig = "ds:counts() -> {n0, ..., n9}",
  text = [[How many images of each class: a list of ten, class id c at position c + 1.]],
  example = [[
local c = fm.load("test"):counts()
print(#c, c[1])   --> 10 1000
]],
  needs = "dataset",
}

doc {
  name = "Dataset:mean_image",
  sig = "ds:mean_image([class]) -> Tensor",
  text = [[The mean of the images (of one class id, or all), 28 x 28.]],
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
