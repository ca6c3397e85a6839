-- cnn.lua: a convolutional network on Fashion-MNIST — train, evaluate, explain, save.
--
--   fmnist-lua notebooks/cnn.lua [outdir] [--epochs N] [--seed N] [--quick]
--
-- Trains fm.CNN, the reference net (conv 3x3x32, ReLU, max-pool, conv 3x3x64, ReLU, max-pool,
-- dense 128, ReLU, dropout 0.5, dense 10), on 90% of the training set, validating on the other
-- 10% (stratified) after each epoch; prints the epochs and the classification report on the
-- 10,000 test images, and draws: learning curves, the confusion matrix (counts and
-- row-normalised), correctly and wrongly classified test images, saliency maps of test images of
-- every class, the filters of the first convolution and the feature maps of one image. Figures and
-- the model (cnn.fmn) go to outdir, by default out/cnn/. --quick trains on 2,000 images for one
-- epoch.
local fm = require "fmnist"
local nb = require "fmnist.notebook"
local explain = require "fmnist.explain"

local o = nb.options("cnn", arg)
if not o then return end
local wall0 = nb.clock()

print("Convolutional network on Fashion-MNIST")
local figs = nb.figures(o.outdir)
local fit, val, test = nb.data(o)

figs:section("Training")
local model = fm.CNN { seed = o.seed }
local history, seconds = nb.train(model, fit, val, o)
nb.learning_curves(history, "CNN", figs)

figs:section("Test set")
local result = nb.evaluate(model, test, "CNN", figs, o)

figs:section("What the model looks at")
print("Saliency: how much each pixel would change the true class's score, for three test images")
print("of each class. The first convolution's 32 filters are small edge and blob detectors; its")
print("feature maps show where in one image each of them fires, and the second convolution's maps")
print("what they combine into.")
explain.draw_saliency(model, test, "CNN", figs, { per_class = 3, seed = o.seed })
explain.draw_filters(model, "CNN", figs)
explain.draw_feature_maps(model, test, "CNN", figs, { index = 1 })

nb.save_model(model, o, { train_seconds = seconds, train_images = #fit,
  test_accuracy = result.accuracy, notebook = "cnn" })
fm.plot.close()
print()
print(("%d figures in %s; test accuracy %.4f; %.1f s"):format(#figs.list, o.outdir,
  result.accuracy, nb.clock() - wall0))
