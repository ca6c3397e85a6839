-- resnet.lua: a residual network on Fashion-MNIST — train with augmentation, evaluate, explain,
-- save.
--
--   fmnist-lua notebooks/resnet.lua [outdir] [--epochs N] [--seed N] [--quick] [--format svg]
--   fmnist-lua -i notebooks/resnet.lua       the same, then a REPL with fit, val, test, model,
--                                            history, result and nb
--   fmnist-lua report notebooks/resnet.lua   the same, written up in out/report/resnet/index.html
--
-- Trains fm.ResNet{} — ResNet-20 in He et al.'s layout for small images: a 3x3 stem, three stages
-- of three residual blocks at 16, 32 and 64 channels with batch norm, global average pooling —
-- with its default recipe (model.defaults: SGD with Nesterov momentum, weight decay, a cosine
-- schedule with warm-up, random crops, flips and erasing) on 90% of the training set, validating
-- on the other 10% after each epoch; prints the epochs and the classification report on the 10,000
-- test images, and draws what the CNN notebook draws: learning curves, both confusion matrices,
-- right and wrong predictions, saliency maps and the stem's feature maps. Figures and the model
-- (resnet.fmn) go to outdir, by default out/resnet/. --quick trains on 2,000 images for one epoch.
local fm = require "fmnist"
local notebook = require "fmnist.notebook"
local explain = require "fmnist.explain"

nb = notebook.new("resnet", arg, {
  title = "Residual network on Fashion-MNIST",
  about = [[Trains ResNet-20 (three stages of residual blocks with batch norm) with augmented
    images on 90% of the training set, validating on the rest after each epoch, then scores it on
    the 10,000 test images and shows what it looks at.]],
})
if not nb then return end

nb:cell("Data", function()
  fit, val, test = nb:data()
end)

nb:cell("Train the ResNet", { needs = { "fit", "val" } }, function()
  model = fm.ResNet { seed = nb.o.seed }
  nb:say(("ResNet-20: %d layers, %d parameters. The recipe (model.defaults) trains with random "
    .. "shifts of up to 2 pixels, left-right flips and random erasing, new for every image in "
    .. "every epoch."):format(model.layers, model.params))
  history, train_seconds = nb:train(model, fit, val)
  nb.draw.learning_curves(history, "ResNet-20", nb.figs)
end)

nb:cell("Score it on the test set", { needs = { "model", "test" } }, function()
  result = nb:evaluate(model, test, "ResNet-20")
end)

-- What the stem (its first convolution, after batch norm and ReLU) makes of one test image.
local function draw_stem_maps(index)
  local image = test:image(index)
  local layer = 3 -- conv2d, batchnorm, relu
  local maps = explain.feature_maps(model, image, layer)
  local s = maps[1]:shape()
  local list, captions = { (explain.input_like(image, s[1], s[2])) }, { "input" }
  for c, m in ipairs(maps) do
    local top = m:max()
    list[#list + 1] = top > 0 and m / top or m
    captions[#captions + 1] = tostring(c)
  end
  nb:figure(fm.plot.images(list, {
    cols = 9, cell = 72, captions = captions, palette = "magma", range = { 0, 1 },
    cblabel = "activation / its largest",
    title = ("ResNet-20: the stem's %d feature maps (after batch norm and ReLU) for test image %d, %s")
      :format(#maps, index, fm.class_name(test:label(index))),
    file = nb:path("stem_feature_maps.png"),
  }), "the stem's feature maps")
end

nb:cell("What the model looks at", { needs = { "model", "test" } }, function()
  nb:say([[Saliency: how much each pixel would change the true class's score, for three test images
of each class; and what the 16 channels of the first convolution see in one image.]])
  nb.draw.saliency(model, test, "ResNet-20", nb.figs, { k = 3, samples = nb.o.quick and 4 or 16, seed = nb.o.seed })
  draw_stem_maps(1)
end)

nb:cell("Save the model", { needs = { "model", "result" } }, function()
  model_path = nb:save_model(model, { train_seconds = train_seconds, train_images = #fit,
    test_accuracy = result.accuracy, notebook = "resnet" })
  fm.plot.close()
  print(("%d figures in %s; test accuracy %.4f"):format(#nb.figs.list, nb.o.outdir, result.accuracy))
end)

nb:finish()
