-- eda.lua: exploratory data analysis of Fashion-MNIST, the first part of the original notebook.
--
--   fmnist-lua notebooks/eda.lua [outdir] [--format png|svg|pdf] [--report DIR] [--cells LIST]
--   fmnist-lua -i notebooks/eda.lua        then a REPL with train, test, pixels and nb
--
-- Prints the shapes, value ranges and per-class counts of the training and test sets, then draws
-- and lists: the class distribution (train and test side by side), the pixel intensity histogram
-- (log scale), the mean intensity of each class, ten sample images of each class, the mean image
-- of each class and the per-pixel standard deviation. Figures go to outdir (default out/eda/).
local fm = require "fmnist"
local notebook = require "fmnist.notebook"

nb = notebook.new("eda", arg, {
  title = "Fashion-MNIST: exploratory data analysis",
  about = [[The two sets as they come: their shapes and pixel values, how many images of each
    class, how bright the pixels are, what the images of each class look like, their mean and
    where they vary.]],
  omit = { "epochs", "quick" },
})
if not nb then return end

nb:cell("Load both sets", function()
  train, test = fm.load("train"), fm.load("test")
  classes = train.classes
  print(train)
  print(test)
end)

nb:cell("Shapes and value ranges", { needs = { "train", "test" } }, function()
  print("Pixels scaled to [0, 1]")
  print()
  pixels = {}
  local rows = {}
  for _, s in ipairs { { "train", train }, { "test", test } } do
    local name, ds = s[1], s[2]
    local x = ds:images()
    pixels[name] = x
    local shape, first = x:shape(), ds:image(1):shape()
    rows[#rows + 1] = { name, shape[1], ds:labels():numel(), first[1] .. "x" .. first[2], x:min(),
      x:max(), x:mean(), x:std() }
  end
  nb:table({ { "set", "%s" }, { "images", "%d" }, { "labels", "%d" }, { "image shape", "%s" },
    { "min", "%.3f" }, { "max", "%.3f" }, { "mean", "%.4f" }, { "std", "%.4f" } }, rows,
    { caption = "shapes and values" })
end)

nb:cell("Images per class", { needs = { "train", "test" } }, function()
  local ctrain, ctest = train:counts(), test:counts()
  local rows = {}
  for c = 1, #classes do
    rows[c] = { c - 1, classes[c], ctrain[c], 100 * ctrain[c] / #train, ctest[c], 100 * ctest[c] / #test }
  end
  rows[#rows + 1] = { nil, "total", #train, 100, #test, 100 }
  nb:table({ { "id", "%d" }, { "class", "%s" }, { "train", "%d" }, { "%", "%.2f" }, { "test", "%d" },
    { "%", "%.2f" } }, rows, { caption = "images per class" })
  nb:figure(fm.plot.bar({ { name = "train", values = ctrain }, { name = "test", values = ctest } }, {
    labels = classes, values = true,
    title = "Class distribution: training and test sets",
    xlabel = "class", ylabel = "number of images",
    file = nb:path("class_distribution.png"),
  }), "class distribution")
end)

nb:cell("Pixel intensities", { needs = { "train", "test", "pixels" } }, function()
  -- One bin per grey level: pixels are k/255, so bins centred on them avoid a comb pattern.
  local half = 0.5 / 255
  nb:figure(fm.plot.hist(pixels.train, {
    bins = 256, range = { -half, 1 + half }, logy = true,
    title = "Pixel intensities of the training set (all 47 million pixels)",
    xlabel = "pixel value (0 = background, 1 = brightest)", ylabel = "pixels (log scale)",
    file = nb:path("pixel_histogram.png"),
  }), "pixel intensity histogram")
  local mean_train, mean_test = {}, {}
  for c = 1, #classes do
    mean_train[c] = train:mean_image(c - 1):mean()
    mean_test[c] = test:mean_image(c - 1):mean()
  end
  nb:figure(fm.plot.bar({ { name = "train", values = mean_train }, { name = "test", values = mean_test } }, {
    labels = classes,
    title = "Mean pixel intensity per class",
    xlabel = "class", ylabel = "mean pixel value",
    file = nb:path("mean_intensity_per_class.png"),
  }), "mean intensity per class")
  pixels = nil -- 47 million floats: not kept for the REPL
end)

nb:cell("Ten images of every class", { needs = { "train" } }, function()
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
  nb:figure(fm.plot.images(samples, {
    cols = 10, captions = captions,
    title = "Ten training images of each class",
    file = nb:path("samples.png"),
  }), "sample images (ten per class)")
end)

nb:cell("Mean image and variation", { needs = { "train" } }, function()
  -- The colour scale spans the brightest mean pixel, not [0, 1]: means are dimmer than images.
  local means, brightest = {}, 0
  for c = 1, #classes do
    means[c] = train:mean_image(c - 1)
    brightest = math.max(brightest, means[c]:max())
  end
  nb:figure(fm.plot.images(means, {
    cols = 5, captions = classes, cell = 130, palette = "magma", range = { 0, brightest },
    cblabel = "mean pixel value",
    title = "Mean image of each class (training set)",
    file = nb:path("mean_images.png"),
  }), "mean image of each class")
  nb:figure(fm.plot.heatmap(train:std_image(), {
    palette = "magma", values = false, cblabel = "standard deviation",
    title = "Per-pixel standard deviation (training set)",
    xlabel = "column", ylabel = "row",
    file = nb:path("pixel_std.png"),
  }), "per-pixel standard deviation")
  fm.plot.close()
end)

nb:finish()
