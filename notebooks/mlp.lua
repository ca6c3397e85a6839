-- mlp.lua: a multilayer perceptron on Fashion-MNIST — train, evaluate, explain, save.
--
--   fmnist-lua notebooks/mlp.lua [outdir] [--epochs N] [--seed N] [--quick] [--format png|svg|pdf]
--                                [--report DIR] [--cells LIST]
--   fmnist-lua -i notebooks/mlp.lua         then a REPL with fit, val, test, model, history,
--                                           result, occ and nb
--
-- Trains fm.MLP (784 -> 256 -> 128 -> 10, ReLU, dropout 0.2) on 90% of the training set,
-- validating on the other 10% (stratified) after each epoch; prints the epochs and the
-- classification report on the 10,000 test images, and draws: learning curves, the confusion
-- matrix (counts and row-normalised), correctly and wrongly classified test images, and occlusion
-- importance — how much accuracy is lost when a small patch of every image is hidden. Figures and
-- the model (mlp.fmn) go to outdir, by default out/mlp/. --quick trains on 2,000 images for one
-- epoch.
local fm = require "fmnist"
local notebook = require "fmnist.notebook"
local explain = require "fmnist.explain"

nb = notebook.new("mlp", arg, {
  title = "Multilayer perceptron on Fashion-MNIST",
  about = [[Trains a multilayer perceptron (784-256-128-10, ReLU, dropout 0.2) on 90% of the
    training set, scores it on the 10,000 test images and measures which pixels it needs by
    hiding small patches of the images.]],
})
if not nb then return end

nb:cell("Data", function()
  fit, val, test = nb:data()
end)

nb:cell("Train the MLP", { needs = { "fit", "val" } }, function()
  model = fm.MLP { hidden = { 256, 128 }, dropout = 0.2, seed = nb.o.seed }
  history, train_seconds = nb:train(model, fit, val)
  nb.draw.learning_curves(history, "MLP", nb.figs)
end)

nb:cell("Score it on the test set", { needs = { "model", "test" } }, function()
  result = nb:evaluate(model, test, "MLP")
end)

-- The overall occlusion map of r and one map per class.
local function draw_occlusion(r, classes)
  local what = ("%dx%d patch, stride %d, %d positions, %d test images"):format(r.patch, r.patch,
    r.stride, r.positions, r.n)
  nb:figure(fm.plot.heatmap(r.map, {
    palette = "magma", values = false, cblabel = "accuracy drop (percentage points)",
    title = ("MLP: occlusion, the accuracy lost when a patch is hidden\n(%s; %.1f%% intact)")
      :format(what, 100 * r.base),
    xlabel = "column", ylabel = "row",
    file = nb:path("occlusion.png"),
  }), "occlusion importance")
  -- One symmetric range for the ten classes: hiding a patch can also help a class (blue). The
  -- top 1% saturate, so that one striking patch does not wash out the rest.
  local a = explain.abs_quantile(r.by_class, 0.99)
  if a == 0 then a = 1 end
  nb:figure(fm.plot.images(r.by_class, {
    cols = 5, cell = 150, captions = classes, palette = "diverging", range = { -a, a },
    cblabel = "drop in the class's accuracy (points)",
    title = ("MLP: occlusion per class, accuracy lost when a patch is hidden\n(%s; the top 1%% "
      .. "saturate)"):format(what),
    file = nb:path("occlusion_per_class.png"),
  }), "occlusion importance per class")
end

-- The hidden layers mix all pixels, so the weights no longer read as pictures; instead, hide a
-- 4x4 patch at every position in a sample of test images and see what the accuracy loses.
nb:cell("What the model looks at", { needs = { "model", "test" } }, function()
  local sample = test:split(math.min(1, (nb.o.quick and 200 or 1000) / #test),
    { seed = nb.o.seed, stratify = true })
  local t0 = fm.clock()
  occ = explain.occlusion(model, sample, { patch = 4, stride = 2 })
  local row, col, worst = explain.peak(occ.map)
  print(("Occlusion (%.1f s): a %dx%d black patch at %d positions (stride %d) in %d test images.")
    :format(fm.clock() - t0, occ.patch, occ.patch, occ.positions, occ.stride, occ.n))
  print(("Intact accuracy %.4f; hiding the pixels around row %d, column %d costs the most,")
    :format(occ.base, row, col))
  print(("%.1f points of accuracy on average."):format(worst))
  draw_occlusion(occ, test.classes)
end)

nb:cell("Save the model", { needs = { "model", "result" } }, function()
  model_path = nb:save_model(model, { train_seconds = train_seconds, train_images = #fit,
    test_accuracy = result.accuracy, notebook = "mlp" })
  fm.plot.close()
  print(("%d figures in %s; test accuracy %.4f"):format(#nb.figs.list, nb.o.outdir, result.accuracy))
end)

nb:finish()
