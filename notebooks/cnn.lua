-- cnn.lua: a convolutional network on Fashion-MNIST — train, evaluate, explain, save.
--
--   fmnist-lua notebooks/cnn.lua [outdir] [--epochs N] [--seed N] [--quick] [--format svg]
--   fmnist-lua -i notebooks/cnn.lua          the same, then a REPL with fit, val, test, model,
--                                            history, result and nb
--   fmnist-lua report notebooks/cnn.lua      the same, written up in out/report/cnn/index.html
--
-- Trains fm.CNN, the reference net (conv 3x3x32, ReLU, max-pool, conv 3x3x64, ReLU, max-pool,
-- dense 128, ReLU, dropout 0.5, dense 10), on 90% of the training set, validating on the other
-- 10% (stratified) after each epoch; prints the epochs and the classification report on the
-- 10,000 test images, and draws: learning curves, the confusion matrix (counts and
-- row-normalised), correctly and wrongly classified test images, saliency maps of test images of
-- every class, the filters of the first convolution and the feature maps of one image. Figures and
-- the model (cnn.fmn) go to outdir, by default out/cnn/. --quick trains on 2,000 images for one
-- epoch.
--
-- Each nb:cell runs as it comes and keeps its output, tables, figures and time; the globals it
-- sets (model, result, ...) are there afterwards. The figures of this notebook are drawn right
-- here; the shared ones (learning curves, confusion matrices, example grids) by nb.draw, which a
-- notebook may replace: nb.draw.confusion = function(result, classes, title, figs) ... end.
local fm = require "fmnist"
local notebook = require "fmnist.notebook"
local explain = require "fmnist.explain"

nb = notebook.new("cnn", arg, {
  title = "Convolutional network on Fashion-MNIST",
  about = [[Trains the reference CNN (two 3x3 convolutions with max-pooling, a dense layer of 128
    with dropout) on 90% of the training set, validating on the rest after each epoch, then scores
    it on the 10,000 test images and shows what it looks at: saliency maps, the first layer's
    filters and the feature maps of one image.]],
})
if not nb then return end

nb:cell("Data", function()
  fit, val, test = nb:data()
end)

nb:cell("Train the CNN", { needs = { "fit", "val" } }, function()
  model = fm.CNN { seed = nb.o.seed }
  history, train_seconds = nb:train(model, fit, val)
  nb.draw.learning_curves(history, "CNN", nb.figs)
end)

nb:cell("Score it on the test set", { needs = { "model", "test" } }, function()
  result = nb:evaluate(model, test, "CNN")
end)

-- The kernels of the first convolution, each 3x3 drawn as big squares, one colour range for all.
local function draw_filters()
  local kernels, layer = explain.filters(model)
  local k = #kernels[1]
  local list, captions, a = {}, {}, 0
  for o, rows in ipairs(kernels) do
    list[o] = explain.enlarge(rows, math.max(1, 24 // k))
    captions[o] = tostring(o)
    a = math.max(a, list[o]:abs():max())
  end
  if a == 0 then a = 1 end
  nb:figure(fm.plot.images(list, {
    cols = 8, cell = 70, captions = captions, palette = "diverging", range = { -a, a },
    cblabel = "weight",
    title = ("CNN: the %d filters of the first convolution (layer %d, %dx%d)"):format(#kernels,
      layer, k, #kernels[1][1]),
    file = nb:path("filters.png"),
  }), "first-layer filters")
end

-- What each convolution (after its ReLU) makes of one test image, each map scaled to its own
-- largest value, the image first at the maps' size.
local function draw_feature_maps(index)
  local image = test:image(index)
  local class = test.classes[test:label(index) + 1]
  for n, conv in ipairs(explain.layers_of(model, "conv2d")) do
    local layer = conv
    if conv < model.layers and model:layer(conv + 1).type == "relu" then layer = conv + 1 end
    local maps = explain.feature_maps(model, image, layer)
    local s = maps[1]:shape()
    local list, captions = { (explain.input_like(image, s[1], s[2])) }, { "input" }
    local dead = 0
    for c, m in ipairs(maps) do
      local top = m:max()
      if top > 0 then m = m / top else dead = dead + 1 end
      list[#list + 1] = m
      captions[#captions + 1] = tostring(c)
    end
    nb:figure(fm.plot.images(list, {
      cols = #list > 40 and 13 or 11, cell = 72, captions = captions, palette = "magma",
      range = { 0, 1 }, cblabel = "activation / its largest",
      title = ("CNN: feature maps of convolution %d (layer %d%s) for test image %d, %s%s"):format(
        n, layer, layer ~= conv and ", after ReLU" or "", index, class,
        dead > 0 and (" - %s all zero"):format(notebook.plural(dead, "map")) or ""),
      file = nb:path(("feature_maps_conv%d.png"):format(n)),
    }), ("feature maps, convolution %d"):format(n))
  end
end

nb:cell("What the model looks at", { needs = { "model", "test" } }, function()
  nb:say([[Saliency: how much each pixel would change the true class's score, for three test images
of each class. The first convolution's 32 filters are small edge and blob detectors; its feature
maps show where in one image each of them fires, and the second convolution's maps what they
combine into.]])
  nb.draw.saliency(model, test, "CNN", nb.figs, { k = 3, samples = nb.o.quick and 4 or 16, seed = nb.o.seed })
  draw_filters()
  draw_feature_maps(1)
end)

nb:cell("Save the model", { needs = { "model", "result" } }, function()
  model_path = nb:save_model(model, { train_seconds = train_seconds, train_images = #fit,
    test_accuracy = result.accuracy, notebook = "cnn" })
  fm.plot.close()
  print(("%d figures in %s; test accuracy %.4f"):format(#nb.figs.list, nb.o.outdir, result.accuracy))
end)

nb:finish()
