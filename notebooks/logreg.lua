-- logreg.lua: logistic regression on Fashion-MNIST — train, evaluate, explain, save.
--
--   fmnist-lua notebooks/logreg.lua [outdir] [--epochs N] [--seed N] [--l2 X] [--quick]
--
-- Trains fm.LogReg (one dense layer from the 784 pixels to the 10 classes, softmax) on 90% of the
-- training set, validating on the other 10% (stratified) after each epoch; prints the epochs, the
-- classification report on the 10,000 test images, and draws: learning curves, the confusion
-- matrix (counts and row-normalised), correctly and wrongly classified test images, the weight map
-- of every class and the importance of each pixel. Figures and the model (logreg.fmn) go to
-- outdir, by default out/logreg/. --quick trains on 2,000 images for one epoch.
local fm = require "fmnist"
local nb = require "fmnist.notebook"
local explain = require "fmnist.explain"

local o = nb.options("logreg", arg, {
  { name = "l2", kind = "number", arg = "X",
    help = "L2 penalty on the weights (default: the model's own); 3e-4 gives smoother weight maps" },
})
if not o then return end
local wall0 = nb.clock()

print("Logistic regression on Fashion-MNIST")
local figs = nb.figures(o.outdir)
local fit, val, test = nb.data(o)

figs:section("Training")
local model = fm.LogReg { seed = o.seed, l2 = o.l2 }
local history, seconds = nb.train(model, fit, val, o)
nb.learning_curves(history, "LogReg", figs)

figs:section("Test set")
local result = nb.evaluate(model, test, "LogReg", figs, o)

-- A linear model explains itself: its weights say which pixels speak for or against each class.
figs:section("What the model looks at")
print("Each class's weights drawn as a 28x28 map: red pixels raise the class's score when bright,")
print("blue ones lower it. Summing |weight| over the classes shows which pixels matter at all;")
print("weighting that by each pixel's standard deviation discounts the border pixels that are")
print("nearly always black: the few images that light them give them large weights, which matter")
print("little (--l2 3e-4 shrinks them, for smoother maps at a fraction of a point of accuracy).")
explain.draw_logreg(model, test.classes, "LogReg", figs, fit)

nb.save_model(model, o, { train_seconds = seconds, train_images = #fit,
  test_accuracy = result.accuracy, notebook = "logreg", l2 = o.l2 })
fm.plot.close()
print()
print(("%d figures in %s; test accuracy %.4f; %.1f s"):format(#figs.list, o.outdir,
  result.accuracy, nb.clock() - wall0))
