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

-- hostile input: lengths, class ids, empty tensors
T.err("metrics: 0 true labels but 1 predictions", function() return fm.metrics(fm.zeros(0), fm.zeros(1)) end)
T.err("metrics: no labels (y_true and y_pred are empty)", function() return fm.metrics(fm.zeros(0), fm.zeros(0)) end)
T.err("y_true[2] = ", function() return fm.metrics(fm.tensor{1, 0/0}, fm.zeros(2)) end)
T.err("y_true[1] = -1.0 is not a class id 0..9", function() return fm.metrics(fm.tensor{-1}, fm.zeros(1)) end)
T.err("y_pred[1] = 2.5 is not a class id 0..9", function() return fm.metrics(fm.zeros(1), fm.tensor{2.5}) end)
T.err("y_pred[1] = inf is not a class id", function() return fm.metrics(fm.zeros(1), fm.tensor{1/0}) end)
T.err("y_true[1] = 1.0000000150475e+30 is not a class id", function() return fm.metrics(fm.tensor{1e30}, fm.zeros(1)) end)
T.eq(fm.metrics(fm.zeros(2, 3), fm.zeros(6)).n, 6, "any shapes of the same length")

-- a result's fields belong to its owner: report() and tostring() name a field that is wrong
local function fresh() return fm.metrics(y_true, y_pred) end
T.err("report: digits must be an integer from 0 to 15, got 1.5", function() return r:report(1.5) end)
T.err("report: digits must be an integer from 0 to 15, got 1000000000", function() return r:report(1e9) end)
T.err("report: digits must be an integer from 0 to 15, got -1", function() return r:report(-1) end)
T.err("report: digits must be an integer from 0 to 15, got \"2\"", function() return r:report("2") end)
T.ok(r:report(15):find("0.700000000000000", 1, true), "report(15)")
T.err("report: a result table expected, got 5 (call it as result:report())", function() return r.report(5) end)
local h = fresh()
h.classes = nil
T.err("report: result.classes is nil (a table of class names expected)", function() return h:report() end)
h = fresh()
h.classes[3] = 42
T.err("report: result.classes[3] is 42 (a class name expected)", function() return h:report() end)
h = fresh()
h.classes[1] = ("x"):rep(1000)
T.ok(h:report():find(("x"):rep(1000) .. "       0.75", 1, true), "a class name of 1000 characters is laid out")
h = fresh()
h.precision = "high"
T.err("report: result.precision is \"high\" (a table expected)", function() return h:report() end)
h = fresh()
h.recall[2] = 0/0
T.ok(h:report():find("nan", 1, true), "a NaN score prints as nan")
h = fresh()
h.support[1] = -4
T.err("report: result.support[1] is -4 (a non-negative integer expected)", function() return h:report() end)
h = fresh()
h.n = 2^70
T.err("report: result.n is", function() return h:report() end)
h = fresh()
h.macro = {precision = 1, recall = 1}
T.err("report: result.macro.f1 is nil (a number expected)", function() return h:report() end)
h = fresh()
h.accuracy = setmetatable({}, {__tostring = function() error("no") end})
T.err("tostring: result.accuracy is table (a number expected)", function() return tostring(h) end)
h = fresh()
h.loss = "low"
T.err("tostring: result.loss is \"low\" (a number expected)", function() return tostring(h) end)

-- the result module the results use is the one the module opened with: what package.loaded,
-- package.preload or require hold later does not matter
local saved_require, saved_loaded = require, package.loaded["fmnist.result"]
T.ok(getmetatable(fresh()) == saved_loaded.Result, "results use fmnist.result's Result")
for _, case in ipairs{
  {"a number in package.loaded", function() package.loaded["fmnist.result"] = 5 end},
  {"a Result that is not a table", function() package.loaded["fmnist.result"] = {Result = 7} end},
  {"a collecting __index", function()
    package.loaded["fmnist.result"] = setmetatable({}, {__index = function() collectgarbage() return 1 end})
  end},
  {"a preload returning a string", function()
    package.loaded["fmnist.result"] = nil
    package.preload["fmnist.result"] = function() return "x" end
  end},
  {"require replaced", function() require = function() return nil end end},
} do
  case[2]()
  local ok, res = pcall(fm.metrics, y_true, y_pred)
  require = saved_require
  T.ok(ok and getmetatable(res) == saved_loaded.Result and res:report():find("T-shirt/top", 1, true),
       "fm.metrics works with " .. case[1] .. ": " .. tostring(res))
end
package.loaded["fmnist.result"] = saved_loaded
T.done()
