-- eda.lua: exploratory data analysis of Fashion-MNIST, the first part of the original notebook.
--
--   fmnist-lua notebooks/eda.lua [outdir]        (figures go to outdir, default out/eda/)
--
-- Prints the shapes, value ranges and per-class counts of the training and test sets, then draws
-- and lists: the class distribution (train and test side by side), the pixel intensity histogram
-- (log scale), the mean intensity of each class, ten sample images of each class, the mean image
-- of each class and the per-pixel standard deviation.
local fm = require "fmnist"

local outdir = (...) or "out/eda"
outdir = outdir:gsub("/+$", "")
if outdir == "" then outdir = "/" end

local clock0 = os.clock()
local wall0 = os.time()

-- mkdir -p, with the name passed to the shell as one quoted word.
local function make_dir(dir)
  local quoted = "'" .. dir:gsub("'", "'\\''") .. "'"
  local ok = os.execute("mkdir -p -- " .. quoted)
  if not ok then error("cannot create the output directory " .. dir, 0) end
end
make_dir(outdir)

local function out(name) return outdir .. "/" .. name end

local function rule(widths)
  local parts = {}
  for i, w in ipairs(widths) do parts[i] = string.rep("-", w) end
  return table.concat(parts, "  ")
end

local train, test = fm.load("train"), fm.load("test")
local classes = train.classes

-- ---- shapes and value ranges ----
print("Fashion-MNIST: shapes and values (pixels scaled to [0, 1])")
print()
local header = ("%-6s  %7s  %7s  %11s  %7s  %7s  %7s  %7s"):format("set", "images", "labels",
  "image shape", "min", "max", "mean", "std")
print(header)
print(rule({ 6, 7, 7, 11, 7, 7, 7, 7 }))
local pixels = {}
for _, s in ipairs { { "train", train }, { "test", test } } do
  local name, ds = s[1], s[2]
  local x = ds:images()
  pixels[name] = x
  local shape = x:shape()
  local first = ds:image(1):shape()
  print(("%-6s  %7d  %7d  %11s  %7.3f  %7.3f  %7.4f  %7.4f"):format(name, shape[1],
    ds:labels():numel(), first[1] .. "x" .. first[2], x:min(), x:max(), x:mean(), x:std()))
end

-- ---- per-class counts ----
print()
print("Images per class")
print()
local ctrain, ctest = train:counts(), test:counts()
print(("%2s  %-12s  %7s  %6s  %7s  %6s"):format("id", "class", "train", "%", "test", "%"))
print(rule({ 2, 12, 7, 6, 7, 6 }))
for c = 1, #classes do
  print(("%2d  %-12s  %7d  %6.2f  %7d  %6.2f"):format(c - 1, classes[c], ctrain[c],
    100 * ctrain[c] / #train, ctest[c], 100 * ctest[c] / #test))
end
print(rule({ 2, 12, 7, 6, 7, 6 }))
print(("%2s  %-12s  %7d  %6.2f  %7d  %6.2f"):format("", "total", #train, 100, #test, 100))

-- ---- figures ----
print()
print("Figures")
local written = {}
local function wrote(path, what)
  written[#written + 1] = path
  print(("  %-34s %s"):format(what, path))
end

wrote(fm.plot.bar({ { name = "train", values = ctrain }, { name = "test", values = ctest } }, {
  labels = classes, values = true,
  title = "Class distribution: training and test sets",
  xlabel = "class", ylabel = "number of images",
  file = out("class_distribution.png"),
}), "class distribution")

-- One bin per grey level: pixels are k/255, so bins centred on them avoid a comb pattern.
local half = 0.5 / 255
wrote(fm.plot.hist(pixels.train, {
  bins = 256, range = { -half, 1 + half }, logy = true,
  title = "Pixel intensities of the training set (all 47 million pixels)",
  xlabel = "pixel value (0 = background, 1 = brightest)", ylabel = "pixels (log scale)",
  file = out("pixel_histogram.png"),
}), "pixel intensity histogram")

local mean_train, mean_test = {}, {}
for c = 1, #classes do
  mean_train[c] = train:mean_image(c - 1):mean()
  mean_test[c] = test:mean_image(c - 1):mean()
end
wrote(fm.plot.bar({ { name = "train", values = mean_train }, { name = "test", values = mean_test } }, {
  labels = classes,
  title = "Mean pixel intensity per class",
  xlabel = "class", ylabel = "mean pixel value",
  file = out("mean_intensity_per_class.png"),
}), "mean intensity per class")

-- Ten random images of every class (a fixed seed, so the figure is the same on every run), one
-- class per row.
local samples, captions = {}, {}
for c = 1, #classes do
  local of_class = train:subset { class = c - 1 }:shuffle(c)
  for i = 1, 10 do
    samples[#samples + 1] = of_class:image(i)
    captions[#captions + 1] = classes[c]
  end
end
wrote(fm.plot.images(samples, {
  cols = 10, captions = captions,
  title = "Ten training images of each class",
  file = out("samples.png"),
}), "sample images (ten per class)")

-- The colour scale spans the brightest mean pixel, not [0, 1]: means are dimmer than images.
local means, brightest = {}, 0
for c = 1, #classes do
  means[c] = train:mean_image(c - 1)
  brightest = math.max(brightest, means[c]:max())
end
wrote(fm.plot.images(means, {
  cols = 5, captions = classes, cell = 130, palette = "magma", range = { 0, brightest },
  title = "Mean image of each class (training set)",
  file = out("mean_images.png"),
}), "mean image of each class")

wrote(fm.plot.heatmap(train:std_image(), {
  palette = "magma", values = false, cblabel = "standard deviation",
  title = "Per-pixel standard deviation (training set)",
  xlabel = "column", ylabel = "row",
  file = out("pixel_std.png"),
}), "per-pixel standard deviation")

pixels = nil
fm.plot.close()
print()
print(("%d figures in %s; %.1f s CPU, about %d s wall clock"):format(#written, outdir,
  os.clock() - clock0, os.time() - wall0))
