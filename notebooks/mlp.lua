-- mlp.lua: a multilayer perceptron on Fashion-MNIST — train, evaluate, explain, save.
--
--   fmnist-lua notebooks/mlp.lua [outdir] [--epochs N] [--seed N] [--quick]
--
-- Trains fm.MLP (784 -> 256 -> 128 -> 10, ReLU, dropout 0.2) on 90% of the training set,
-- validating on the other 10% (stratified) after each epoch; prints the epochs and the
-- classification report on the 10,000 test images, and draws: learning curves, the confusion
-- matrix (counts and row-normalised), correctly and wrongly classified test images, and occlusion
-- importance — how much accuracy is lost when a small patch of every image is hidden. Figures and
-- the model (mlp.fmn) go to outdir, by default out/mlp/. --quick trains on 2,000 images for one
-- epoch.
local fm = require "fmnist"
local nb = require "fmnist.notebook"
local explain = require "fmnist.explain"

local o = nb.options("mlp", arg)
if not o then return end
local wall0 = nb.clock()

print("Multilayer perceptron on Fashion-MNIST")
local figs = nb.figures(o.outdir)
local fit, val, test = nb.data(o)

figs:section("Training")
local model = fm.MLP { hidden = { 256, 128 }, dropout = 0.2, seed = o.seed }
local history, seconds = nb.train(model, fit, val, o)
nb.learning_curves(history, "MLP", figs)

figs:section("Test set")
local result = nb.evaluate(model, test, "MLP", figs, o)

-- The hidden layers mix all pixels, so the weights no longer read as pictures; instead, hide a
-- 4x4 patch at every position in a sample of test images and see what the accuracy loses.
figs:section("What the model looks at")
local sample = test:split(math.min(1, (o.quick and 200 or 1000) / #test),
  { seed = o.seed, stratify = true })
local t0 = nb.clock()
local occ = explain.occlusion(model, sample, { patch = 4, stride = 2 })
local row, col, worst = explain.peak(occ.map)
print(("Occlusion (%.1f s): a %dx%d black patch at %d positions (stride %d) in %d test images.")
  :format(nb.clock() - t0, occ.patch, occ.patch, occ.positions, occ.stride, occ.n))
print(("Intact accuracy %.4f; hiding the pixels around row %d, column %d costs the most,")
  :format(occ.base, row, col))
print(("%.1f points of accuracy on average."):format(worst))
explain.draw_occlusion(occ, test.classes, "MLP", figs)

nb.save_model(model, o, { train_seconds = seconds, train_images = #fit,
  test_accuracy = result.accuracy, notebook = "mlp" })
fm.plot.close()
print()
print(("%d figures in %s; test accuracy %.4f; %.1f s"):format(#figs.list, o.outdir,
  result.accuracy, nb.clock() - wall0))
