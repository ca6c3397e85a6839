-- logreg.lua: logistic regression on Fashion-MNIST — train, evaluate, explain, save.
--
--   fmnist-lua notebooks/logreg.lua [outdir] [--epochs N] [--seed N] [--l2 X] [--quick]
--                                   [--format png|svg|pdf] [--report DIR] [--cells LIST]
--   fmnist-lua -i notebooks/logreg.lua      then a REPL with fit, val, test, model, history,
--                                           result and nb
--
-- Trains fm.LogReg (one dense layer from the 784 pixels to the 10 classes, softmax) on 90% of the
-- training set, validating on the other 10% (stratified) after each epoch; prints the epochs, the
-- classification report on the 10,000 test images, and draws: learning curves, the confusion
-- matrix (counts and row-normalised), correctly and wrongly classified test images, the weight map
-- of every class and the importance of each pixel. Figures and the model (logreg.fmn) go to
-- outdir, by default out/logreg/. --quick trains on 2,000 images for one epoch.
local fm = require "fmnist"
local notebook = require "fmnist.notebook"
local explain = require "fmnist.explain"

nb = notebook.new("logreg", arg, {
  title = "Logistic regression on Fashion-MNIST",
  about = [[Trains a logistic regression (one dense layer from the 784 pixels to the ten classes)
    on 90% of the training set, scores it on the 10,000 test images and draws its weights: a
    linear model explains itself.]],
  options = {
    { name = "l2", kind = "number", arg = "X", default_text = "the model's own",
      help = "L2 penalty on the weights (default: the model's own); 3e-4 gives smoother weight maps" },
  },
})
if not nb then return end

nb:cell("Data", function()
  fit, val, test = nb:data()
end)

nb:cell("Train the logistic regression", { needs = { "fit", "val" } }, function()
  model = fm.LogReg { seed = nb.o.seed, l2 = nb.o.l2 }
  history, train_seconds = nb:train(model, fit, val)
  nb.draw.learning_curves(history, "LogReg", nb.figs)
end)

nb:cell("Score it on the test set", { needs = { "model", "test" } }, function()
  result = nb:evaluate(model, test, "LogReg")
end)

-- The weight map of every class, the pixel importance, and the importance weighted by how much
-- each pixel varies in the training images.
local function draw_weights(classes, train)
  local maps = explain.class_weights(model)
  -- One colour range for all ten, symmetric so that white is exactly zero and the classes compare.
  -- The largest weights sit on the border pixels that are almost always black (an adaptive
  -- optimizer moves rarely used weights as far as the others); the top 2% saturate, so that the
  -- garment's shape is not washed out by them.
  local a = explain.abs_quantile(maps, 0.98)
  if a == 0 then a = 1 end
  nb:figure(fm.plot.images(maps, {
    cols = 5, cell = 150, captions = classes, palette = "diverging", range = { -a, a },
    cblabel = "weight (red: evidence for the class, blue: against)",
    title = ("LogReg: weights of each class over the 28x28 pixels\n(colours saturate beyond "
      .. "+-%.2g, the largest 2%% of the weights)"):format(a),
    file = nb:path("weights_per_class.png"),
  }), "weight map of every class")
  local importance = explain.pixel_importance(model)
  nb:figure(fm.plot.heatmap(importance, {
    palette = "magma", values = false, cblabel = "sum over the 10 classes of |weight|",
    title = "LogReg: pixel importance, |weight| summed over the classes",
    xlabel = "column", ylabel = "row",
    file = nb:path("pixel_importance.png"),
  }), "pixel importance")
  -- A weight matters as much as its pixel varies: a pixel that is always black (the corners)
  -- never moves a score, whatever its weight.
  nb:figure(fm.plot.heatmap(importance * train:std_image(), {
    palette = "magma", values = false, cblabel = "sum over the classes of |weight| x pixel std",
    title = "LogReg: pixel importance weighted by how much each pixel varies",
    xlabel = "column", ylabel = "row",
    file = nb:path("pixel_importance_std.png"),
  }), "pixel importance x pixel std")
end

-- A linear model explains itself: its weights say which pixels speak for or against each class.
nb:cell("What the model looks at", { needs = { "model", "fit" } }, function()
  nb:say([[Each class's weights drawn as a 28x28 map: red pixels raise the class's score when bright,
blue ones lower it. Summing |weight| over the classes shows which pixels matter at all;
weighting that by each pixel's standard deviation discounts the border pixels that are
nearly always black: the few images that light them give them large weights, which matter
little (--l2 3e-4 shrinks them, for smoother maps at a fraction of a point of accuracy).]])
  draw_weights(test.classes, fit)
end)

nb:cell("Save the model", { needs = { "model", "result" } }, function()
  model_path = nb:save_model(model, { train_seconds = train_seconds, train_images = #fit,
    test_accuracy = result.accuracy, notebook = "logreg", l2 = nb.o.l2 })
  fm.plot.close()
  print(("%d figures in %s; test accuracy %.4f"):format(#nb.figs.list, nb.o.outdir, result.accuracy))
end)

nb:finish()
