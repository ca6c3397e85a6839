-- fm.metrics and the result table: the numbers of scikit-learn's classification_report.
local T = require "testlib"
local fm = require "fmnist"

-- 3 classes in play: 0 (4 images), 1 (3 images), 2 (3 images)
local y_true = fm.tensor{0, 0, 0, 0, 1, 1, 1, 2, 2, 2}
local y_pred = fm.tensor{0, 0, 1, 0, 1, 1, 2, 2, 2, 0}
local r = fm.metrics(y_true, y_pred)
T.near(r.accuracy, 0.7, 1e-12, "accuracy")
T.eq(r.n, 10, "n")
T.eq(r.confusion:get(1, 1), 3, "confusion[0][0]")
T.eq(r.confusion:get(1, 2), 1, "confusion row = true class, column = predicted")
T.eq(r.confusion:get(3, 1), 1, "confusion[2][0]")
T.near(r.confusion_normalized:get(1, 1), 0.75, 1e-6, "row-normalised confusion")
T.near(r.precision[1], 3 / 4, 1e-12, "precision of class 0")
T.near(r.recall[2], 2 / 3, 1e-12, "recall of class 1")
T.near(r.f1[3], 2 / 3, 1e-12, "f1 of class 2")
T.eq(r.support[1], 4, "support")
T.eq(r.precision[5], 0, "a class never predicted has precision 0")
T.near(r.macro.recall, (0.75 + 2 / 3 + 2 / 3) / 3, 1e-12, "macro average over the classes present")
T.ok(r.present[3] and not r.present[4], "present classes")
T.near(r.weighted.recall, 0.7, 1e-12, "weighted recall equals accuracy")

local rep = r:report()
local lines = {}
for line in rep:gmatch("[^\n]*") do lines[#lines + 1] = line end
T.ok(rep:find("precision    recall  f1-score   support", 1, true), "report header")
T.ok(rep:find(" T-shirt/top       0.75      0.75      0.75         4", 1, true), "report row")
T.ok(rep:find("    accuracy                           0.70        10", 1, true), "accuracy row")
T.ok(rep:find("weighted avg ", 1, true) and rep:find("   macro avg ", 1, true), "average rows")
T.ok(not rep:find("Dress", 1, true), "a class neither present nor predicted gets no row")
T.ok(r:report(4):find("0.7500", 1, true), "report(digits)")
T.ok(tostring(r):find("accuracy 0.7000", 1, true), "tostring")

T.err("metrics: 3 true labels but 2 predictions", function() return fm.metrics(fm.zeros(3), fm.zeros(2)) end)
T.err("y_pred[2] = 10.0 is not a class id 0..9", function() return fm.metrics(fm.zeros(2), fm.tensor{1, 10}) end)
T.err("bad argument #1 to 'metrics' (fmnist.Tensor expected, got table)", function() return fm.metrics({}, fm.zeros(1)) end)
T.done()
