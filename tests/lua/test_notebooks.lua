-- The model notebooks end to end: logreg, mlp, cnn, explain and compare run through the host in
-- --quick mode into a temporary directory; each must finish, print its tables and report, and
-- write every figure it lists as a real PNG; the saved models load and score what the notebooks
-- printed. Skipped when the Fashion-MNIST files are not installed.
local T = require "testlib"
local fm = require "fmnist"

local host = os.getenv("FMNIST_HOST") or "./fmnist-lua"
local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

if not pcall(fm.load, "test") then
  T.skip("the model notebooks", "the Fashion-MNIST dataset is not installed")
  T.done()
  return
end

local dir = T.tmpdir()

-- Runs a notebook; returns its standard output, standard error, whether it succeeded and the
-- seconds it took.
local function run(script, args)
  local err = dir .. "/stderr.txt"
  local t0 = os.time()
  local proc = io.popen(("%s notebooks/%s %s 2>%s"):format(host, script, args, shell_quote(err)))
  local out = proc:read("a")
  local ok = proc:close()
  local f = io.open(err, "r")
  local stderr = f and f:read("a") or ""
  if f then f:close() end
  return out, stderr, ok, os.time() - t0
end

local function show_failure(out, stderr)
  print("# " .. (out .. "\n" .. stderr):gsub("\n", "\n# "))
end

local PNG_SIGNATURE = "\137PNG\r\n\26\n"

-- A figure: its path was printed, it is a PNG of a sensible size that libpng reads back, and it
-- is not a blank page.
local function check_figure(out, file, what)
  T.ok(out:find(file, 1, true), what .. ": its path is printed")
  local f = io.open(file, "rb")
  local data = f and f:read("a") or ""
  if f then f:close() end
  T.ok(data:sub(1, 8) == PNG_SIGNATURE and #data > 5000,
    what .. ": a PNG of " .. #data .. " bytes")
  local ok, img = pcall(fm.load_png, file)
  local shape = ok and img:shape() or { 0, 0 }
  T.ok(ok and shape[1] >= 300 and shape[2] >= 400 and img:min() < 0.3 and img:max() > 0.9,
    what .. ": " .. shape[2] .. "x" .. shape[1] .. " pixels with ink on white")
end

local classes = fm.load("test").classes
local function has_report(out)
  for _, name in ipairs(classes) do
    if not out:find("\n%s*" .. name:gsub("%p", "%%%0") .. "%s+%d%.%d%d%s+%d%.%d%d%s+%d%.%d%d%s+%d+\n")
    then return false, name end
  end
  return out:find("macro avg", 1, true) and out:find("weighted avg", 1, true), "the averages"
end

-- What the data cells print of the two sets: their files.
local train_line = tostring(fm.load("train"))
local test_line = tostring(fm.load("test"))

-- The quick test set the notebooks use, to score the saved models again.
local quick_test = fm.load("test"):split(500 / 10000, { seed = 1, stratify = true })

-- ---- the three training notebooks ----
local COMMON = { "learning_curve_loss.png", "learning_curve_accuracy.png", "confusion_counts.png",
  "confusion_normalized.png", "correct.png", "incorrect.png" }
local NOTEBOOKS = {
  { name = "logreg", kind = "LogReg", figures = { "weights_per_class.png", "pixel_importance.png",
    "pixel_importance_std.png" } },
  { name = "mlp", kind = "MLP", figures = { "occlusion.png", "occlusion_per_class.png" } },
  { name = "cnn", kind = "CNN", figures = { "saliency.png", "filters.png",
    "feature_maps_conv1.png", "feature_maps_conv2.png" } },
}
local accuracy = {}
for _, nbk in ipairs(NOTEBOOKS) do
  local outdir = dir .. "/" .. nbk.name
  local out, stderr, ok, seconds = run(nbk.name .. ".lua", shell_quote(outdir) .. " --quick")
  T.ok(ok, nbk.name .. ".lua --quick runs to the end (" .. seconds .. " s)")
  if not ok then show_failure(out, stderr) end
  T.ok(seconds <= 60, nbk.name .. ": quick means seconds, not minutes (" .. seconds .. " s)")
  T.ok(out:find("Data: 2000 training images (1800 trained on, 200 held out for validation, "
    .. "stratified), 500 test images", 1, true), nbk.name .. ": the quick data and the split")
  T.ok(out:find(train_line, 1, true) and out:find(test_line, 1, true),
    nbk.name .. ": the data cell says which files each set came from")
  T.ok(out:find("epoch    loss  accuracy  val loss  val accuracy", 1, true)
    and out:find("\n    1  %d%.%d%d%d%d    %d%.%d%d%d%d    %d%.%d%d%d%d        %d%.%d%d%d%d"),
    nbk.name .. ": the table of epochs, one row")
  T.ok(stderr:find("Epoch 1/1", 1, true), nbk.name .. ": training progress on stderr")
  local good, missing = has_report(out)
  T.ok(good, nbk.name .. ": the classification report (" .. tostring(missing) .. ")")
  local acc = tonumber(out:match(nbk.kind .. " on the test set: accuracy (%d%.%d+)"))
  accuracy[nbk.name] = acc
  T.ok(acc and acc > 0.3 and acc < 1, nbk.name .. ": test accuracy printed, above chance ("
    .. tostring(acc) .. ")")
  local figures = table.move(COMMON, 1, #COMMON, 1, {})
  table.move(nbk.figures, 1, #nbk.figures, #figures + 1, figures)
  for _, name in ipairs(figures) do check_figure(out, outdir .. "/" .. name, nbk.name .. "/" .. name) end
  -- The saved model: it loads, is what was trained, and scores on the quick test set what the
  -- notebook printed.
  local path = outdir .. "/" .. nbk.name .. ".fmn"
  T.ok(out:find("Model saved: " .. path, 1, true), nbk.name .. ": the model's path is printed")
  local loaded, model = pcall(fm.load_model, path)
  T.ok(loaded and model.kind == nbk.kind and model.epochs == 1,
    nbk.name .. ": the saved model loads (" .. tostring(loaded and model.kind or model) .. ")")
  if loaded then
    T.ok(tonumber(model.info.train_seconds) and tonumber(model.info.train_seconds) >= 0,
      nbk.name .. ": training seconds kept in the file (" .. tostring(model.info.train_seconds) .. ")")
    T.eq(model.info.quick, "yes", nbk.name .. ": the file says it was a quick run")
    T.near(model:evaluate(quick_test).accuracy, acc or -1, 1e-4,
      nbk.name .. ": the loaded model scores what the notebook printed")
    T.near(tonumber(model.info.test_accuracy) or -1, acc or -1, 1e-4,
      nbk.name .. ": and the file records it")
  end
end

-- ---- explain: the three saved models, side by side ----
do
  local outdir = dir .. "/explain"
  local out, stderr, ok, seconds = run("explain.lua",
    shell_quote(outdir) .. " --models " .. shell_quote(dir) .. " --quick")
  T.ok(ok, "explain.lua runs to the end (" .. seconds .. " s)")
  T.ok(out:find(test_line, 1, true), "explain: the data cell says which files the test set came from")
  if not ok then show_failure(out, stderr) end
  T.ok(out:find("\nLogReg%s+%S+logreg%.fmn%s+7850%s+1 epoch ") and out:find("\nMLP%s+%S+mlp%.fmn")
    and out:find("\nCNN%s+%S+cnn%.fmn"), "explain: the three models are found")
  T.ok(not out:find("1 epochs", 1, true), "explain: 1 epoch, not 1 epochs")
  T.ok(out:find("model%s+intact accuracy%s+mean drop") and out:find("\nLogReg%s+0%.%d+")
    and out:find("\nCNN%s+0%.%d+"), "explain: the occlusion table of the models")
  for _, name in ipairs { "saliency_models.png", "mean_saliency_models.png", "occlusion_models.png",
    "occlusion_per_class_models.png" } do
    check_figure(out, outdir .. "/" .. name, "explain/" .. name)
  end
  -- Nothing the model notebooks drew is drawn again.
  local p = io.popen("ls " .. shell_quote(outdir))
  local files = p:read("a")
  p:close()
  T.eq(select(2, files:gsub("%.png", "")), 4, "explain: four figures, all new (" .. files:gsub("\n", " ") .. ")")
end

-- ---- compare: loads the saved models and agrees with them ----
do
  local outdir = dir .. "/compare"
  local out, stderr, ok, seconds = run("compare.lua",
    shell_quote(outdir) .. " --models " .. shell_quote(dir) .. " --quick")
  T.ok(ok, "compare.lua runs to the end (" .. seconds .. " s)")
  if not ok then show_failure(out, stderr) end
  T.ok(out:find("LogReg%s+loaded from") and out:find("CNN%s+loaded from"),
    "compare: the saved models are loaded, not trained again")
  T.ok(out:find("model%s+test accuracy%s+macro F1%s+training s%s+images/s%s+parameters"),
    "compare: the table's columns")
  for _, nbk in ipairs(NOTEBOOKS) do
    local acc, f1, secs, speed, params = out:match("\n" .. nbk.kind
      .. "%s+(%d%.%d+)%s+(%d%.%d+)%s+(%d+%.%d)%s+(%d+)%s+(%d+)")
    T.near(tonumber(acc) or -1, accuracy[nbk.name] or -2, 1e-4,
      "compare: " .. nbk.kind .. " scores what its notebook printed")
    T.ok(tonumber(f1) and tonumber(f1) > 0 and tonumber(speed) and tonumber(speed) > 0,
      "compare: " .. nbk.kind .. " macro F1 and images/s")
    local model = fm.load_model(dir .. "/" .. nbk.name .. "/" .. nbk.name .. ".fmn")
    T.eq(tonumber(params), model.params, "compare: " .. nbk.kind .. " parameter count")
    T.near(tonumber(secs) or -1, tonumber(model.info.train_seconds) or -2, 0.051,
      "compare: " .. nbk.kind .. " training seconds from the file")
  end
  local pair_rows = 0
  for line in out:gmatch("[^\n]+") do
    if line:find("^ +%d  [%w/%- ]+ / [%w/%- ]+ +%d+ +%d+ +%d+ +%d+$") then pair_rows = pair_rows + 1 end
  end
  T.ok(out:find("rank%s+pair%s+LogReg%s+MLP%s+CNN%s+all") and pair_rows == 5,
    "compare: the five most confused pairs (" .. pair_rows .. " rows)")
  check_figure(out, outdir .. "/per_class_accuracy.png", "compare/per_class_accuracy.png")
  check_figure(out, outdir .. "/confused_pairs.png", "compare/confused_pairs.png")
end

-- ---- compare --retrain: trains the three as the notebooks do, to the same scores ----
do
  local outdir = dir .. "/compare2"
  local out, stderr, ok, seconds = run("compare.lua",
    shell_quote(outdir) .. " --models " .. shell_quote(dir) .. " --quick --retrain")
  T.ok(ok, "compare.lua --retrain runs to the end (" .. seconds .. " s)")
  if not ok then show_failure(out, stderr) end
  T.ok(out:find("LogReg%s+training") and out:find("CNN%s+training")
    and select(2, stderr:gsub("Epoch 1/1", "")) == 3, "compare --retrain: the three are trained")
  for _, nbk in ipairs(NOTEBOOKS) do
    local acc = out:match("\n" .. nbk.kind .. "%s+(%d%.%d+)%s")
    T.near(tonumber(acc) or -1, accuracy[nbk.name] or -2, 1e-4,
      "compare --retrain: " .. nbk.kind .. " as trained by its notebook (same seed, same model)")
  end
end

-- ---- options ----
do
  local out, stderr, ok = run("logreg.lua", shell_quote(dir .. "/two") .. " --quick --epochs 2 --seed 7")
  T.ok(ok and out:find("\n    2  %d%.%d%d%d%d"), "--epochs 2: two rows of epochs")
  if not ok then show_failure(out, stderr) end
  local loaded, model = pcall(fm.load_model, dir .. "/two/logreg.fmn")
  T.ok(loaded and model.epochs == 2 and model.info.seed == "7", "--epochs and --seed reach the model")

  out, stderr, ok = run("mlp.lua", "--quick --bogus")
  T.ok(not ok and stderr:find("mlp.lua: unknown option '--bogus'", 1, true),
    "an unknown option is an error naming it (" .. stderr:gsub("\n.*", "") .. ")")
  out, stderr, ok = run("cnn.lua", "--epochs many")
  T.ok(not ok and stderr:find("option --epochs needs a whole number, not 'many'", 1, true),
    "a bad number is an error naming the option")
  out, stderr, ok = run("cnn.lua", "--help")
  T.ok(ok and out:find("usage: fmnist-lua notebooks/cnn.lua", 1, true) and out:find("--quick", 1, true)
    and not out:find("Training"), "--help prints the options and stops")
  out, stderr, ok = run("explain.lua", "--models " .. shell_quote(dir .. "/nothing-here"))
  T.ok(not ok and stderr:find("no saved model in", 1, true)
    and out:find("run  fmnist-lua notebooks/cnn.lua", 1, true),
    "explain without models says which notebooks to run")
end

T.done()
