-- Datasets made from tensors (fm.dataset) and joined (ds:concat, fm.concat): every shape and scale
-- of images taken, every bad argument refused with the words of its error, hostile tables, the
-- class count of a dataset and what methods and models do with it, the memory the collector
-- sees, and a model trained and evaluated end to end on images drawn here.
local T = require "testlib"
local fm = require "fmnist"
local H = require "fmnist.help"

-- n images of 28x28 as nested lists, image i filled with value f(i, r, c)
local function images(n, rows, cols, f)
  local t = {}
  for i = 1, n do
    local img = {}
    for r = 1, rows do
      local row = {}
      for c = 1, cols do row[c] = f(i, r, c) end
      img[r] = row
    end
    t[i] = img
  end
  return fm.tensor(t)
end

-- ---- shapes and scales ----
local bytes = images(6, 28, 28, function(i, r, c) return (i * 40 + r + c) % 256 end)
local labels = { 0, 1, 2, 3, 4, 5 }
local ds = fm.dataset(bytes, labels)
T.eq(#ds, 6, "N x 28 x 28: six images")
T.eq(ds.num_classes, 10, "Fashion-MNIST's ten classes by default")
T.eq(ds.classes[1], "T-shirt/top", "and their names")
T.eq(ds:labels():totable(), { 0, 1, 2, 3, 4, 5 }, "labels from a list")
T.ok(ds:images() == bytes:reshape(6, 784) / 255, "integers 0-255 detected: images() gives value / 255")
T.eq(ds.source.kind, "tensors", "source.kind")
T.eq(ds.source.pixels, "integers 0-255", "source.pixels says how the pixels were read")
T.eq(#ds.source.files, 0, "no files")
T.eq(tostring(ds), "fmnist.Dataset 'dataset': 6 images of 28x28, 10 classes (6 with images here), "
  .. "made from tensors (pixels given as integers 0-255)", "tostring")

local unit = bytes / 255
local from_unit = fm.dataset(unit:reshape(6, 784), fm.tensor(labels))
T.ok(from_unit:images() == ds:images(), "N x 784 floats in [0, 1] give the same bytes")
T.eq(from_unit.source.pixels, "numbers in [0, 1]", "detected as [0, 1]")
T.ok(fm.dataset(unit:reshape(6, 28, 28, 1), fm.tensor(labels):reshape(6, 1)):images() == ds:images(),
  "N x 28 x 28 x 1 images and N x 1 labels")
local rounded = fm.dataset(fm.full(1, 28, 28, 0.5), { 0 })
T.near(rounded:image(1):get(1, 1), 128 / 255, 1e-7, "0.5 is rounded to the nearest of 256 levels")
local dark = fm.dataset(fm.ones(2, 28, 28), { 0, 0 }, { range = 255 })
T.near(dark:image(1):get(3, 3), 1 / 255, 1e-7, "range = 255: a value of 1 is 1 of 255")
T.near(fm.dataset(fm.ones(2, 28, 28), { 0, 0 }):image(1):get(3, 3), 1, 0, "detected: all 1 is white")
local small = fm.dataset(images(3, 5, 7, function(i, r, c) return (r * c + i) % 2 end), { 1, 1, 0 })
T.eq(table.concat(small:image(2):shape(), "x"), "5x7", "N x H x W: images of 5x7")
T.eq(table.concat(small:images():shape(), "x"), "3x35", "images() is N x H*W")
T.ok(tostring(small):find("3 images of 5x7", 1, true), "tostring gives the size: " .. tostring(small))
local named = fm.dataset(bytes, labels, { classes = { "a", "b", "c", "d", "e", "f", "g" }, name = "mine" })
T.eq(named.num_classes, 7, "seven class names: seven classes")
T.eq(named.classes, { "a", "b", "c", "d", "e", "f", "g" }, "ds.classes are the names given")
named.classes[1] = "changed"
T.eq(named.classes[1], "a", "ds.classes is a copy: changing it changes nothing")
T.eq(named:counts(), { 1, 1, 1, 1, 1, 1, 0 }, "counts of seven classes")
T.ok(tostring(named):find("^fmnist.Dataset 'mine': 6 images of 28x28, 7 classes %(6 with images here%)"),
  "tostring: the name and the classes: " .. tostring(named))
local counted = fm.dataset(fm.zeros(3, 28, 28), { 0, 1, 255 }, { classes = 256 })
T.eq(counted.num_classes, 256, "classes = 256: up to a byte")
T.eq(counted.classes[256], "255", "counted classes are named by their id")
T.eq(counted:counts()[256], 1, "counts of 256 classes")
T.eq(counted:mean_image(255):sum(), 0, "mean_image of class 255")
T.err("mean_image: class 7 (7) has no images in this dataset", function() return counted:mean_image(7) end)
T.err("class id must be in 0..255, got 256", function() return counted:subset { class = 256 } end)
T.err("mean_image: class 6 (g) has no images in this dataset", function() return named:mean_image(6) end)

-- ---- every method takes it ----
do
  local n = 120
  local x = images(n, 28, 28, function(i, r, c) return ((i + r * c) % 7) / 6 end)
  local y = {}
  for i = 1, n do y[i] = (i - 1) % 12 end
  local twelve = fm.dataset(x, y, { classes = 12 })
  local a, b = twelve:split(0.8, { seed = 1, stratify = true })
  T.eq(#a, 96, "stratified split of 12 classes")
  T.eq(a:counts(), { 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8 }, "every class split alike, classes 10 and 11 too")
  T.eq(b.num_classes, 12, "a view keeps the classes")
  T.eq(#twelve:subset { class = 11 }, 10, "subset{class = 11}")
  T.eq(twelve:shuffle(3):labels():sum(), twelve:labels():sum(), "shuffle")
  local seen = 0
  for bx, by in twelve:batches(50, { shuffle = true, seed = 2 }) do
    seen = seen + #by
    T.eq(bx:shape()[2], 784, "batches of 784 pixels")
  end
  T.eq(seen, n, "batches cover it")
  T.near(twelve:std_image(11):max(), twelve:subset { class = 11 }:images():std(1):max(), 1e-5,
    "std_image of class 11")
  local copy = twelve:subset { class = 11 }:concat()
  T.eq(#copy, 10, "ds:concat() of a view: a copy of its own")
  T.eq(copy.num_classes, 12, "the copy keeps the classes")
  -- models: a model of ten classes refuses labels 10 and 11, naming them; one of twelve trains
  local m = fm.LogReg {}
  T.err("fit: train step: label 1", function() return m:fit(twelve, { epochs = 1, verbose = 0 }) end)
  T.err("is not a class of this network (0 to 9)", function() return m:fit(twelve, { epochs = 1, verbose = 0 }) end)
  T.err("is not a class of this network (0 to 9)", function() return m:evaluate(twelve) end)
  T.err("evaluate: predict: label 10", function() return m:evaluate(twelve) end)
  local m12 = fm.Model { layers = { { "dense", 12 } }, seed = 1 }
  m12:fit(twelve, { epochs = 1, verbose = 0, seed = 1 })
  local r = m12:evaluate(twelve)
  T.eq(r.confusion:shape(), { 12, 12 }, "a model of twelve classes evaluates a dataset of twelve")
  T.eq(m12:predict(twelve):numel(), n, "and predicts it")
  T.err("fit: training images of 5x7 do not fit the model's 28x28x1 input",
    function() return m:fit(small, { epochs = 1, verbose = 0 }) end)
end

-- ---- bad images ----
T.err("bad argument #1 to 'dataset' (a tensor of images expected (N x 784, N x H x W or N x H x W x 1), got nil)",
  function() return fm.dataset(nil, labels) end)
T.err("got table", function() return fm.dataset({ { 1 } }, labels) end)
T.err("got fmnist.Dataset", function() return fm.dataset(ds, labels) end)
T.err("dataset: images of 784: expected N x 784, N x H x W or N x H x W x 1 (N images)",
  function() return fm.dataset(fm.zeros(784), { 0 }) end)
T.err("dataset: images of 28x28: a 2-D tensor must be N x 784 (28x28 images, one a row); give other sizes as N x H x W",
  function() return fm.dataset(fm.zeros(28, 28), { 0 }) end)
T.err("dataset: images of 2x28x28x3 have 3 channels: only grayscale images are taken (N x H x W x 1)",
  function() return fm.dataset(fm.zeros(2, 28, 28, 3), { 0, 0 }) end)
T.err("dataset: no images (a 0x784 tensor)", function() return fm.dataset(fm.zeros(0, 784), {}) end)
T.err("dataset: images of 0x5 (each side 1 to 4096) (a 2x0x5 tensor)", function() return fm.dataset(fm.zeros(2, 0, 5), { 0, 0 }) end)
T.err("dataset: images of 1x5000 (each side 1 to 4096) (a 1x1x5000 tensor)",
  function() return fm.dataset(fm.zeros(1, 1, 5000), { 0 }) end)
local function with(i, r, c, v)
  local x = fm.zeros(3, 28, 28)
  x:set(i, r, c, v)
  return x
end
T.err("dataset: images[2][3][4] is nan: not a number (pixels are numbers in [0, 1] or integers 0-255)",
  function() return fm.dataset(with(2, 3, 4, 0 / 0), { 0, 0, 0 }) end)
T.err("dataset: images[1][1][2] is -0.25: below 0", function() return fm.dataset(with(1, 1, 2, -0.25), { 0, 0, 0 }) end)
T.err("dataset: images[3][28][28] is inf: infinite", function() return fm.dataset(with(3, 28, 28, 1 / 0), { 0, 0, 0 }) end)
T.err("dataset: images[1][5][5] is 256: above 255", function() return fm.dataset(with(1, 5, 5, 256), { 0, 0, 0 }) end)
do
  local x = with(3, 1, 1, 200)
  x:set(1, 2, 2, 0.5)
  T.err("dataset: images[1][2][2] is 0.5: a fraction, but the pixels are read as integers 0-255 because "
    .. "images[3][1][1] is 200 (above 1)", function() return fm.dataset(x, { 0, 0, 0 }) end)
  T.err("dataset: images[3][1][1] is 200: above 1 (pixels are numbers in [0, 1])",
    function() return fm.dataset(x, { 0, 0, 0 }, { range = 1 }) end)
  T.err("dataset: images[1][2][2] is 0.5: a fraction (pixels are integers 0-255)",
    function() return fm.dataset(x, { 0, 0, 0 }, { range = 255 }) end)
  T.err("dataset: images[1][1] is 0.5: a fraction, but the pixels are read as integers 0-255 because images[1][2] is 7",
    function() return fm.dataset(fm.tensor { { 0.5, 7, table.unpack(fm.zeros(782):totable()) } }, { 0 }) end)
end

-- ---- bad labels ----
local x3 = fm.zeros(3, 28, 28)
T.err("bad argument #2 to 'dataset' (labels expected: a tensor or a list of class ids, got no value)",
  function() return fm.dataset(x3) end)
T.err("labels expected: a tensor or a list of class ids, got string", function() return fm.dataset(x3, "012") end)
T.err("dataset: labels of 2 for 3 images (a 1-D tensor of 3 class ids expected)",
  function() return fm.dataset(x3, fm.tensor { 0, 1 }) end)
T.err("dataset: labels of 3x2 for 3 images", function() return fm.dataset(x3, fm.zeros(3, 2)) end)
T.err("dataset: 2 labels for 3 images", function() return fm.dataset(x3, { 0, 1 }) end)
T.err("dataset: 4 labels for 3 images", function() return fm.dataset(x3, { 0, 1, 2, 3 }) end)
T.err("dataset: labels[2] is 10, not a class id (an integer 0 to 9: 10 classes); opts.classes names more classes",
  function() return fm.dataset(x3, { 0, 10, 1 }) end)
T.err("dataset: labels[3] is 12, not a class id (an integer 0 to 9: 10 classes); opts.classes names more classes",
  function() return fm.dataset(x3, fm.tensor { 0, 1, 12 }) end)
T.ok(not T.err("dataset: labels[3] is 1.5, not a class id (an integer 0 to 9: 10 classes)",
  function() return fm.dataset(x3, fm.tensor { 0, 1, 1.5 }) end):find("opts.classes", 1, true),
  "a fraction gets no word about more classes")
T.err("dataset: labels[3] is -1, not a class id", function() return fm.dataset(x3, { 0, 1, -1 }) end)
T.err("dataset: labels[1] is 2.5, not a class id", function() return fm.dataset(x3, { 2.5, 1, 1 }) end)
T.err("dataset: labels[2] is the string '3', not a class id", function() return fm.dataset(x3, { 0, "3", 1 }) end)
T.err("dataset: labels[2] is true, not a class id", function() return fm.dataset(x3, { 0, true, 1 }) end)
T.err("dataset: labels[1] is a fmnist.Tensor, not a class id", function() return fm.dataset(x3, { fm.zeros(1), 1, 1 }) end)
T.err("dataset: labels[3] is 9.2233720368548e+18, not a class id", function() return fm.dataset(x3, { 0, 1, 2^63 }) end)
T.err("dataset: labels[3] is 3, not a class id (an integer 0 to 2: 3 classes)",
  function() return fm.dataset(x3, fm.tensor { 0, 1, 3 }, { classes = { "a", "b", "c" } }) end)
T.err("dataset: labels[1] is nan, not a class id", function() return fm.dataset(x3, fm.tensor { 0 / 0, 1, 1 }) end)
T.eq(fm.dataset(x3, { 0, 1.0, 2 }):label(2), 1, "a float label with an integer value is taken")

-- hostile lists: read raw, so no metamethod runs and a proxy is refused clearly
local calls = 0
local proxy = setmetatable({}, { __len = function() calls = calls + 1; return 3 end,
  __index = function(_, i) calls = calls + 1; return i - 1 end })
T.err("dataset: 0 labels for 3 images (the list is read raw: its metatable is not used)",
  function() return fm.dataset(x3, proxy) end)
T.eq(calls, 0, "no metamethod of the labels list ran")
local huge_len = setmetatable({ 0, 1, 2 }, { __len = function() return 1 << 62 end, __index = function() error("no") end })
T.eq(#fm.dataset(x3, huge_len), 3, "a __len claiming 2^62 is not asked: the raw length is 3")
local with_gc = setmetatable({ 2, 1, 0 }, { __gc = function() end, __close = function() end })
T.eq(fm.dataset(x3, with_gc):labels():totable(), { 2, 1, 0 }, "a list with __gc and __close is read like any")
local holes = { 0, 1, 2 }
holes[2] = nil
T.err("dataset: labels[2] is nil, not a class id", function() return fm.dataset(x3, holes) end)

-- ---- bad options ----
T.err("dataset: unknown option 'clases' (known: classes, range, name)", function() return fm.dataset(x3, { 0, 0, 0 }, { clases = 3 }) end)
T.err("bad argument #3 to 'dataset' (table expected, got number)", function() return fm.dataset(x3, { 0, 0, 0 }, 5) end)
T.err("dataset: option 'classes' lists 0 names (1 to 256 expected)", function() return fm.dataset(x3, { 0, 0, 0 }, { classes = {} }) end)
local many = {}
for i = 1, 257 do many[i] = "c" .. i end
T.err("dataset: option 'classes' lists 257 names (1 to 256 expected)", function() return fm.dataset(x3, { 0, 0, 0 }, { classes = many }) end)
T.err("dataset: option 'classes' lists 0 names (1 to 256 expected) (the list is read raw: its metatable is not used)",
  function() return fm.dataset(x3, { 0, 0, 0 }, { classes = setmetatable({}, { __index = function() return "x" end, __len = function() return 3 end }) }) end)
T.err("dataset: classes[2] is 7 (a class name expected)", function() return fm.dataset(x3, { 0, 0, 0 }, { classes = { "a", 7 } }) end)
T.err("dataset: classes[3] 'a' repeats classes[1]", function() return fm.dataset(x3, { 0, 0, 0 }, { classes = { "a", "b", "a" } }) end)
T.err("dataset: classes[1] is the string '': a class name", function() return fm.dataset(x3, { 0, 0, 0 }, { classes = { "" } }) end)
T.err("dataset: classes[2] is the string 'x?y': a class name has 1 to 100 characters, none of them a control character",
  function() return fm.dataset(x3, { 0, 0, 0 }, { classes = { "a", "x\ny" } }) end)
T.err("dataset: classes[1] is the string 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'",
  function() return fm.dataset(x3, { 0, 0, 0 }, { classes = { ("x"):rep(101) } }) end)
T.eq(fm.dataset(x3, { 0, 0, 0 }, { classes = { ("x"):rep(100), "Größe" } }).classes[2], "Größe",
  "names of 100 bytes and UTF-8 are fine")
for _, bad in ipairs { 0, 257, 2.5, "x", true } do
  T.err("dataset: option 'classes' must be a list of 1 to 256 class names or a count, got",
    function() return fm.dataset(x3, { 0, 0, 0 }, { classes = bad }) end)
end
for _, bad in ipairs { 2, 0, 1.5, "255", 0 / 0 } do
  T.err("dataset: option 'range' must be 1 (pixels are numbers in [0, 1]) or 255 (integers 0-255), got",
    function() return fm.dataset(x3, { 0, 0, 0 }, { range = bad }) end)
end
for _, bad in ipairs { 5, "", "a\0b", ("n"):rep(101), "tab\there" } do
  T.err("dataset: option 'name' must be a name of 1 to 100 characters without control characters, got",
    function() return fm.dataset(x3, { 0, 0, 0 }, { name = bad }) end)
end
do -- an options table whose __index collects garbage and drops the caller's tensor
  local victim = fm.zeros(2, 28, 28)
  local opts = setmetatable({}, { __index = function(_, k)
    victim = nil
    collectgarbage("collect")
    if k == "name" then return "sneaky" end
  end })
  local made = fm.dataset(victim, { 1, 2 }, opts)
  collectgarbage("collect")
  T.eq(tostring(made):match("'(%w+)'"), "sneaky", "options read through __index that collects garbage")
  T.eq(made:labels():totable(), { 1, 2 }, "and the dataset is whole")
end
do -- the documented options are the ones taken
  local _, msg = pcall(fm.dataset, x3, { 0, 0, 0 }, { no_such_option = 1 })
  local names = {}
  for _, o in ipairs(H.get("fm.dataset").options) do names[#names + 1] = o[1] end
  T.eq(table.concat(names, ", "), msg:match("%(known: ([^)]*)%)"), "fm.dataset: documented options = known options")
end

-- ---- memory: the dataset owns its bytes, and the collector counts them ----
do
  collectgarbage("collect")
  local x = fm.zeros(4000, 28, 28)
  collectgarbage("collect")
  local before = collectgarbage("count")
  local big = fm.dataset(x, fm.zeros(4000))
  local grew = collectgarbage("count") - before
  T.ok(grew > 3000 and grew < 3300, ("the 3.1 MB of 4000 images are counted by the collector (%.0f KB)"):format(grew))
  x = nil
  collectgarbage("collect")
  T.eq(#big, 4000, "the dataset outlives the tensor it was made from")
  T.eq(big:images(4000, 4000):sum(), 0, "and its pixels are its own")
  big = nil
  collectgarbage("collect")
  T.ok(collectgarbage("count") < before - 2900, "and are freed with it")
end

-- ---- joining ----
local a = fm.dataset(fm.zeros(2, 28, 28), { 0, 1 }, { name = "a" })
local b = fm.dataset(fm.full(3, 28, 28, 255), { 2, 3, 9 }, { name = "b" })
local ab = a:concat(b)
T.eq(#ab, 5, "a:concat(b)")
T.eq(ab:labels():totable(), { 0, 1, 2, 3, 9 }, "labels in order")
T.eq(ab:images():sum(1):totable()[1], 3, "pixels in order (three white images after two black)")
T.eq(tostring(ab), "fmnist.Dataset 'a + b': 5 images of 28x28, 10 classes (5 with images here), joined from 2 parts",
  "tostring of a join")
T.eq(ab.source.kind, "concat", "source.kind concat")
T.eq(#ab.source.parts, 2, "source.parts")
T.eq(ab.source.parts[2].kind, "tensors", "each part's source")
local abab = fm.concat { ab, ab:subset { 5, 1 }, a }
T.eq(abab:labels():totable(), { 0, 1, 2, 3, 9, 9, 0, 0, 1 }, "fm.concat of views, in view order")
T.eq(#abab.source.parts, 5, "the parts of joined datasets are listed flat")
T.eq(tostring(abab):match("'(.-)'"), "a + b + 2 more", "the name of a join of three")
T.eq(#fm.concat { a }, 2, "fm.concat of one: a copy")
T.err("concat: dataset 2 has images of 5x7, dataset 1 of 28x28", function() return a:concat(small) end)
T.err("concat: dataset 2 has 7 classes, dataset 1 has 10", function() return a:concat(named) end)
local other_names = fm.dataset(fm.zeros(1, 28, 28), { 0 }, { classes = { "x", "b", "c", "d", "e", "f", "g" } })
T.err("concat: class 0 is 'x' in dataset 2 but 'a' in dataset 1", function() return named:concat(other_names) end)
local fashion_names = fm.dataset(fm.zeros(1, 28, 28), { 4 }, { classes = fm.classes })
T.eq(#a:concat(fashion_names), 3, "Fashion-MNIST's names given explicitly are the same classes")
T.err("bad argument #2 to 'concat' (fmnist.Dataset expected, got number)", function() return a:concat(b, 5) end)
T.err("bad argument #1 to 'concat' (fmnist.Dataset expected, got fmnist.Tensor; fm.dataset(images, labels) makes one from tensors)",
  function() return a:concat(fm.zeros(1)) end)
T.err("concat: the list of datasets is empty", function() return fm.concat {} end)
T.err("concat: the list of datasets is empty (the list is read raw: its metatable is not used)",
  function() return fm.concat(setmetatable({}, { __index = function() return a end, __len = function() return 2 end })) end)
T.err("concat: entry 2 is the string 'b' (a fmnist.Dataset expected)", function() return fm.concat { a, "b" } end)
T.err("bad argument #1 to 'concat' (a list of datasets expected, got fmnist.Dataset)", function() return fm.concat(a) end)
T.eq(#a:concat(b:subset {}), 2, "joining an empty view")

-- ---- errors that point to fm.dataset ----
local model = fm.LogReg {}
T.err("bad argument #1 to 'fit' (fmnist.Dataset expected, got fmnist.Tensor; fm.dataset(images, labels) makes one from tensors)",
  function() return model:fit(fm.zeros(2, 784), fm.zeros(2)) end)
T.err("bad argument #2 to 'fit' (fmnist.Dataset expected, got fmnist.Tensor; fm.dataset",
  function() local _, e = pcall(model.fit, model, fm.zeros(2, 784)); error(e, 0) end)
T.err("bad argument #1 to 'subset' (fmnist.Dataset expected, got number)",
  function() local _, e = pcall(ds.subset, 5, 1, 2); error(e, 0) end)
T.err("(a file name, \"train\" or \"test\" expected, got fmnist.Tensor (fm.dataset(images, labels) makes a dataset from tensors))",
  function() return fm.load(fm.zeros(2, 784), fm.zeros(2)) end)

-- ---- end to end: a model learns images drawn here ----
-- Three classes of 28x28 pictures: a bright 6x6 square somewhere in the top left quarter, in the
-- top right quarter, or a bar across the bottom half; with noise. A logistic regression tells
-- them apart from their positions.
do
  fm.seed(7)
  local function draw(n)
    local x, y = fm.rand(n, 28, 28) * 0.2, {}
    local noise = fm.rand(n, 3)
    for i = 1, n do
      local class = (i - 1) % 3
      local u, v = math.floor(noise:get(i, 1) * 6), math.floor(noise:get(i, 2) * 6)
      if class == 2 then
        local row = 16 + math.floor(noise:get(i, 3) * 10)
        for c = 3, 26 do x:set(i, row, c, 1); x:set(i, row + 1, c, 1) end
      else
        local r0, c0 = 2 + u, (class == 0 and 2 or 16) + v
        for r = r0, r0 + 5 do for c = c0, c0 + 5 do x:set(i, r, c, 1) end end
      end
      y[i] = class
    end
    return x, y
  end
  local x, y = draw(450)
  local train = fm.dataset(x, y, { classes = { "top left", "top right", "bottom bar" }, name = "drawn" })
  local tx, ty = draw(150)
  local test = fm.dataset(tx, fm.tensor(ty), { classes = { "top left", "top right", "bottom bar" } })
  local fit, val = train:split(0.8, { seed = 1, stratify = true })
  local m = fm.LogReg {}
  local history = m:fit(fit, { epochs = 3, batch = 32, lr = 0.05, seed = 1, validation = val, verbose = 0 })
  T.eq(#history, 3, "fit ran three epochs on a dataset made from tensors")
  T.ok(history.val_accuracy[3] > 0.9, ("validation accuracy %.3f"):format(history.val_accuracy[3]))
  local r = m:evaluate(test)
  T.ok(r.accuracy > 0.9, ("test accuracy on drawn images %.3f"):format(r.accuracy))
  T.eq(r.n, 150, "evaluate counted every test image")
  T.eq(m:predict(test), m:predict(tx), "predict on the dataset = predict on the tensor it was made from")
  local mlp = fm.MLP { hidden = { 32 }, seed = 1 }
  mlp:fit(train, { epochs = 3, lr = 3e-3, seed = 1, verbose = 0 })
  local acc = mlp:evaluate(test).accuracy
  T.ok(acc > 0.9, ("an MLP learns them too (%.3f)"):format(acc))
end

-- a dataset with classes a model does not have: predictions need no labels; evaluation uses the
-- dataset's own class names; images of another shape with as many pixels are refused
do
  local x = fm.rand(40, 28, 28)
  local y = {}
  for i = 1, 40 do y[i] = (i - 1) % 12 end
  local names = { "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l" }
  local ds12 = fm.dataset(x, y, { classes = names })
  local ten = fm.MLP{ hidden = { 8 }, seed = 1 }
  T.eq(ten:predict(ds12):numel(), 40, "a 10-class model predicts a 12-class dataset (no labels needed)")
  local twelve = fm.Model{ seed = 1, layers = { { "dense", 12 } } }
  local r = twelve:evaluate(ds12)
  T.eq({ r.classes[1], r.classes[12], #r.classes }, { "a", "l", 12 }, "evaluate names the dataset's classes")
  T.err("is not a class of this network (0 to 9)", function()
    ten:fit(ds12, { epochs = 1, verbose = false })
  end)
  local odd = fm.dataset(fm.rand(4, 16, 49), { 0, 1, 2, 3 })
  T.err("predict: images of 16x49 do not fit a network taking 28x28x1", function() return ten:predict(odd) end)
  T.err("fit: training images of 16x49 do not fit the model's 28x28x1 input", function()
    ten:fit(odd, { epochs = 1, verbose = false })
  end)
end

T.done()
