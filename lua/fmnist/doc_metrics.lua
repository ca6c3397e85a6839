-- Help text of the metrics and results (lua/l_metrics.c, lua/fmnist/result.lua): see
-- lua/fmnist/help.lua.
local doc = require("fmnist.help").section("Metrics", 50, [[
Scores of predictions against labels, with the numbers and the layout of scikit-learn's
classification_report. model:evaluate returns the same result, with the loss.]])

doc {
  name = "fm.metrics",
  sig = "fm.metrics(y_true, y_pred) -> Result",
  text = [[
The scores of predicted class ids against true ones: two tensors of class ids 0..9 of the same
length. Raises naming the lengths or the value that is not a class id.]],
  example = [[
local r = fm.metrics(fm.tensor{0, 1, 1, 2}, fm.tensor{0, 1, 0, 2})
print(r.accuracy, r.n)   --> 0.75 4
]],
  see = { "Result", "Model:evaluate" },
}

doc {
  name = "Result",
  class = "fm.result.Result",
  sig = "Result",
  text = [[
The scores that fm.metrics and model:evaluate return: accuracy, loss (evaluate only), the confusion
matrix raw and row-normalised, precision, recall, F1 and support per class, their macro and
weighted averages, and report() for the classification report. print(result) gives the accuracy.]],
  example = [[
print(fm.metrics(fm.tensor{0, 1}, fm.tensor{0, 0}))   --> fmnist result: accuracy 0.5000 on 2 images
]],
}

local function field(name, text, example)
  doc { name = "Result." .. name, sig = "result." .. name, text = text,
    example = "local r = fm.metrics(fm.tensor{0, 1, 1, 2}, fm.tensor{0, 1, 0, 2})\n" .. example .. "\n" }
end

field("accuracy", [[The share of images whose class was predicted right.]],
  "print(r.accuracy)   --> 0.75")
field("loss", [[The mean cross-entropy loss (model:evaluate only; absent from fm.metrics).]],
  "print(r.loss)   --> nil")
field("n", [[The number of images scored.]], "print(r.n)   --> 4")
field("confusion", [[
The 10 x 10 confusion matrix: row t, column p counts the images of class id t - 1 predicted as
class id p - 1.]], "print(r.confusion:get(2, 1), r.confusion:get(2, 2))   --> 1.0 1.0")
field("confusion_normalized", [[The confusion matrix with each row divided by its sum (the share of each true class).]],
  "print(r.confusion_normalized:get(2, 2))   --> 0.5")
field("precision", [[Per class (position c + 1 for class id c): the share of the images predicted as c that are c.]],
  "print(r.precision[1])   --> 0.5")
field("recall", [[Per class: the share of the images of class c predicted as c (its accuracy).]],
  "print(r.recall[2])   --> 0.5")
field("f1", [[Per class: the harmonic mean of precision and recall.]],
  "print(('%.3f'):format(r.f1[1]))   --> 0.667")
field("support", [[Per class: how many images of it there are.]], "print(r.support[2])   --> 2")
field("present", [[Per class: true when the class is in the labels or the predictions (report leaves the others out).]],
  "print(r.present[1], r.present[5])   --> true false")
field("macro", [[{precision, recall, f1}: the unweighted mean over the classes present.]],
  "print(('%.3f'):format(r.macro.recall))   --> 0.833")
field("weighted", [[{precision, recall, f1}: the mean over the classes weighted by their support.]],
  "print(('%.3f'):format(r.weighted.recall))   --> 0.750")
field("classes", [[The class names the report uses.]], "print(r.classes[3])   --> Pullover")

doc {
  name = "Result:report",
  sig = "result:report([digits]) -> string",
  text = [[
The classification report as scikit-learn prints it: precision, recall, F1 and support of each
class present, then accuracy and the macro and weighted averages, with `digits` decimals (2).]],
  example = [[
local r = fm.metrics(fm.tensor{0, 1, 1}, fm.tensor{0, 1, 0})
print(r:report():match("accuracy%s+[%d.]+"))   --> accuracy 0.67
]],
}
