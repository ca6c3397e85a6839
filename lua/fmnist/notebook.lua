-- fmnist.notebook: what the model notebooks (logreg, mlp, cnn, explain, compare) have in common —
-- their command-line options, the data they train on, aligned tables, the list of figures they
-- write, training with a table of epochs, learning curves, confusion matrices, grids of right and
-- wrong predictions, saving the model, and a wall clock.
--
--   local nb = require "fmnist.notebook"
--   local o = nb.options("logreg", arg)      -- nil after --help
--   local fit, val, test = nb.data(o)
--   local figs = nb.figures(o.outdir)        -- figs:path(name), figs:add(path, what)
--   local history, seconds = nb.train(model, fit, val, o)
--   nb.learning_curves(history, "LogReg", figs)
--   local result = nb.evaluate(model, test, "LogReg", figs, o)   -- report, confusion, grids
--   nb.save_model(model, o, {train_seconds = seconds})
--
-- Options every notebook takes: [outdir], --out DIR, --epochs N, --seed N, --quick, --help; a
-- notebook may add its own (--models DIR, --retrain).
local fm = require "fmnist"

local M = {}

-- The quick mode: enough images for every step to run and every figure to have content, few
-- enough that a whole notebook takes seconds (the tests run each one this way).
M.QUICK = { train = 2000, test = 500, epochs = 1 }

-- ---- options ----

local COMMON_OPTIONS = {
  { name = "out", kind = "string", arg = "DIR",
    help = "folder for the figures (default out/NAME; also the first plain argument)" },
  { name = "epochs", kind = "int", arg = "N", help = "epochs to train (default: the model's own)" },
  { name = "seed", kind = "int", arg = "N",
    help = "seed of the split, the weights, the batches and the examples shown (default 1)" },
  { name = "quick", kind = "flag",
    help = ("a quick run: %d training and %d test images, %d epoch"):format(M.QUICK.train,
      M.QUICK.test, M.QUICK.epochs) },
  { name = "help", kind = "flag", help = "print this and stop" },
}

local function usage(name, list)
  local lines = { ("usage: fmnist-lua notebooks/%s.lua [outdir] [options]"):format(name), "" }
  for _, spec in ipairs(list) do
    local flag = "--" .. spec.name .. (spec.arg and (" " .. spec.arg) or "")
    lines[#lines + 1] = ("  %-16s %s"):format(flag, (spec.help:gsub("NAME", name)))
  end
  return table.concat(lines, "\n")
end

-- nb.options(name, argv [, extra [, omit]]) -> options, or nil after --help (the usage is
-- printed). extra: more options, {name =, kind = "int"|"string"|"flag", arg =, help =, default =};
-- omit: names of common options the notebook has no use for ({"epochs"}).
-- Returns {name, outdir, seed, epochs (nil: the model's default; 1 when quick), quick, ...extra}.
function M.options(name, argv, extra, omit)
  local list, by_name, skip = {}, {}, {}
  for _, k in ipairs(omit or {}) do skip[k] = true end
  for _, spec in ipairs(COMMON_OPTIONS) do
    if not skip[spec.name] then list[#list + 1] = spec end
  end
  for _, spec in ipairs(extra or {}) do list[#list + 1] = spec end
  for _, spec in ipairs(list) do by_name[spec.name] = spec end
  local o = { name = name, seed = 1, quick = false }
  for _, spec in ipairs(extra or {}) do o[spec.name] = spec.default end
  local script = name .. ".lua"
  local function bad(fmt, ...)
    error(script .. ": " .. fmt:format(...) .. " (--help lists the options)", 0)
  end
  local positional = {}
  local i = 1
  argv = argv or {}
  while i <= #argv do
    local a = argv[i]
    local key, value = a:match("^%-%-([%w_-]+)=(.*)$")
    key = key or a:match("^%-%-([%w_-]+)$")
    if a == "-h" then key = "help" end
    if key then
      local spec = by_name[key]
      if not spec then bad("unknown option '%s'", a) end
      if spec.kind == "flag" then
        if value then bad("option --%s takes no value", key) end
        o[key] = true
      else
        if not value then
          i = i + 1
          value = argv[i]
          if value == nil then bad("option --%s needs a value (%s)", key, spec.arg) end
        end
        if spec.kind == "int" then
          local n = math.tointeger(tonumber(value))
          if not n or n < 0 then bad("option --%s needs a whole number, not '%s'", key, value) end
          value = n
        elseif spec.kind == "number" then
          local n = tonumber(value)
          if not n or n < 0 or n ~= n or n == math.huge then
            bad("option --%s needs a number of at least 0, not '%s'", key, value)
          end
          value = n
        end
        o[key] = value
      end
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      bad("unknown option '%s'", a)
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  if o.help then
    print(usage(name, list))
    return nil
  end
  if #positional > 1 then bad("one output folder expected, got %d arguments", #positional) end
  if positional[1] and o.out then bad("the output folder is given twice") end
  if o.epochs == 0 then bad("option --epochs must be at least 1") end
  o.outdir = (o.out or positional[1] or ("out/" .. name)):gsub("/+$", "")
  if o.outdir == "" then o.outdir = "/" end
  if o.quick and not o.epochs then o.epochs = M.QUICK.epochs end
  return o
end

-- ---- files and folders ----

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- mkdir -p, with the name passed to the shell as one quoted word.
function M.make_dir(dir)
  local ok = os.execute("mkdir -p -- " .. shell_quote(dir))
  if not ok then error("cannot create the output directory " .. dir, 0) end
end

function M.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- Where a notebook's model is saved: DIR/logreg/logreg.fmn.
function M.model_path(dir, name)
  return ("%s/%s/%s.fmn"):format(dir, name, name)
end

-- The list of figures a notebook writes, printed as they come:
--   figs:path("loss.png") -> "out/logreg/loss.png";  figs:add(path, "what it shows")
local Figures = {}
Figures.__index = Figures

function M.figures(outdir)
  M.make_dir(outdir)
  return setmetatable({ dir = outdir, list = {}, listing = false, prefix = "" }, Figures)
end

-- figs.prefix ("cnn_") goes in front of every name, for a notebook that draws the same figures
-- for several models into one folder.
function Figures:path(name) return self.dir .. "/" .. self.prefix .. name end

-- The figures of a section are listed under one heading "Figures" (nothing is printed when
-- figs.quiet is set).
function Figures:add(path, what)
  self.list[#self.list + 1] = path
  if self.quiet then return path end
  if not self.listing then
    print()
    print("Figures")
    self.listing = true
  end
  print(("  %-40s %s"):format(what, path))
  return path
end

-- figs:section(title): a heading for the next part of the notebook.
function Figures:section(title)
  self.listing = false
  print()
  print(title)
  print(("="):rep(utf8.len(title) or #title))
end

-- ---- time ----

-- Seconds on the wall clock (os.clock counts the CPU time of every thread).
M.clock = require("fmnist").clock

-- ---- tables ----

-- "1 epoch", "12 epochs"
function M.plural(n, word)
  return ("%d %s%s"):format(n, word, n == 1 and "" or "s")
end

-- nb.table(columns, rows): prints rows under aligned headers. A column is {title, format}; a
-- format with s is left-aligned (names), any other right-aligned (numbers). A row value may be
-- nil (printed as "-").
function M.table(columns, rows)
  local cells, widths = {}, {}
  for c, col in ipairs(columns) do widths[c] = #col[1] end
  for r, row in ipairs(rows) do
    cells[r] = {}
    for c, col in ipairs(columns) do
      local v = row[c]
      local s = v == nil and "-" or col[2]:format(v)
      cells[r][c] = s
      widths[c] = math.max(widths[c], utf8.len(s) or #s)
    end
  end
  local function line(values)
    local parts = {}
    for c, col in ipairs(columns) do
      local s = values[c]
      local pad = (" "):rep(widths[c] - (utf8.len(s) or #s))
      parts[c] = col[2]:find("s$") and (s .. pad) or (pad .. s)
    end
    return (table.concat(parts, "  "):gsub("%s+$", ""))
  end
  local titles, rule = {}, {}
  for c, col in ipairs(columns) do
    titles[c] = col[1]
    rule[c] = ("-"):rep(widths[c])
  end
  print(line(titles))
  print(table.concat(rule, "  "))
  for r = 1, #rows do print(line(cells[r])) end
end

-- ---- data ----

-- nb.data(o) -> fit, val, test: the training set split 90/10 (stratified, o.seed) into the images
-- trained on and the validation images, and the test set. Quick: a stratified sample of each.
function M.data(o)
  local train, test = fm.load("train"), fm.load("test")
  if o.quick then
    train = (train:split(M.QUICK.train / #train, { seed = o.seed, stratify = true }))
    test = (test:split(M.QUICK.test / #test, { seed = o.seed, stratify = true }))
  end
  local fit, val = train:split(0.9, { seed = o.seed, stratify = true })
  print(("Data: %d training images (%d trained on, %d held out for validation, stratified), "
    .. "%d test images%s"):format(#train, #fit, #val, #test, o.quick and "  [quick run]" or ""))
  return fit, val, test
end

-- ---- training ----

-- nb.train(model, fit, val, o) -> history, seconds: the model's summary, training with the
-- progress on stderr, then the table of epochs. seconds is the wall-clock time of the epochs.
function M.train(model, fit, val, o)
  model:summary()
  print()
  print(("Training on %d images%s, validating on %d after each epoch (progress on stderr)")
    :format(#fit, o.epochs and (" for %s"):format(M.plural(o.epochs, "epoch")) or "", #val))
  io.stdout:flush()
  local history = model:fit(fit, { epochs = o.epochs, seed = o.seed, validation = val })
  local seconds = 0
  for _, s in ipairs(history.seconds or {}) do seconds = seconds + s end
  print()
  M.epoch_table(history)
  if history.stopped then
    print(("Stopped: %s%s"):format(history.stopped,
      history.best_epoch and (" (the weights of epoch %d kept)"):format(history.best_epoch) or ""))
  end
  print(("%s in %.1f s (%.0f images/s)"):format(M.plural(#history, "epoch"), seconds,
    seconds > 0 and #fit * #history / seconds or 0))
  return history, seconds
end

function M.epoch_table(history)
  local rows = {}
  for e, rec in ipairs(history) do
    rows[e] = { rec.epoch, rec.loss, rec.accuracy, rec.val_loss, rec.val_accuracy, rec.lr,
      rec.seconds }
  end
  M.table({ { "epoch", "%d" }, { "loss", "%.4f" }, { "accuracy", "%.4f" }, { "val loss", "%.4f" },
    { "val accuracy", "%.4f" }, { "learning rate", "%.2e" }, { "seconds", "%.1f" } }, rows)
end

-- nb.learning_curves(history, title, figs): loss and accuracy per epoch, training and validation.
function M.learning_curves(history, title, figs)
  local function series(train, val)
    local list = { { name = "training", values = train } }
    if val and #val > 0 then list[2] = { name = "validation", values = val } end
    return list
  end
  figs:add(fm.plot.lines(series(history.loss, history.val_loss), {
    title = title .. ": loss per epoch", xlabel = "epoch", ylabel = "cross-entropy loss",
    file = figs:path("learning_curve_loss.png"),
  }), "learning curve: loss")
  figs:add(fm.plot.lines(series(history.accuracy, history.val_accuracy), {
    title = title .. ": accuracy per epoch", xlabel = "epoch", ylabel = "accuracy",
    file = figs:path("learning_curve_accuracy.png"),
  }), "learning curve: accuracy")
end

-- ---- evaluation ----

-- Probabilities, predicted class ids (0..9), confidences and true labels of a dataset, as Lua
-- arrays.
function M.predictions(model, ds)
  local probs = model:predict_proba(ds)
  return {
    probs = probs,
    pred = (probs:argmax(2) - 1):totable(),
    confidence = probs:max(2):totable(),
    label = ds:labels():totable(),
  }
end

-- nb.confusion(result, classes, title, figs): the confusion matrix as counts and row-normalised.
function M.confusion(result, classes, title, figs)
  figs:add(fm.plot.heatmap(result.confusion, {
    labels = classes, palette = "blues", cblabel = "test images",
    title = ("%s: confusion matrix on %d test images (counts)"):format(title, result.n),
    xlabel = "predicted class", ylabel = "true class",
    file = figs:path("confusion_counts.png"),
  }), "confusion matrix (counts)")
  figs:add(fm.plot.heatmap(result.confusion_normalized, {
    labels = classes, palette = "blues", range = { 0, 1 }, digits = 2,
    cblabel = "share of the true class's images",
    title = ("%s: confusion matrix, row-normalised (share of each true class)"):format(title),
    xlabel = "predicted class", ylabel = "true class",
    file = figs:path("confusion_normalized.png"),
  }), "confusion matrix (row-normalised)")
end

-- "true: Coat\npred: Shirt\n87%": the captions of predicted images.
local function caption(classes, label, pred, confidence)
  return ("true: %s\npred: %s\n%.0f%%"):format(classes[label + 1], classes[pred + 1],
    100 * confidence)
end

-- A deterministic shuffle of a list (Fisher-Yates on Lua's generator seeded here).
local function shuffled(list, seed)
  local out = table.move(list, 1, #list, 1, {})
  math.randomseed(seed)
  for i = #out, 2, -1 do
    local j = math.random(i)
    out[i], out[j] = out[j], out[i]
  end
  return out
end
M.shuffled = shuffled

-- nb.prediction_grids(model, test, p, title, figs, o): two correctly classified test images of
-- each class, and twenty misclassified ones picked at random, each captioned with its true class,
-- predicted class and confidence. p: nb.predictions(model, test).
function M.prediction_grids(test, p, title, figs, o)
  local classes = test.classes
  local right_by_class, wrong = {}, {}
  for c = 1, #classes do right_by_class[c] = {} end
  for i, y in ipairs(p.label) do
    if p.pred[i] == y then
      table.insert(right_by_class[y + 1], i)
    else
      wrong[#wrong + 1] = i
    end
  end
  local right = {}
  for c = 1, #classes do
    for k, i in ipairs(shuffled(right_by_class[c], o.seed + c)) do
      if k > 2 then break end
      right[#right + 1] = i
    end
  end
  wrong = shuffled(wrong, o.seed)
  for k = #wrong, 21, -1 do wrong[k] = nil end
  table.sort(wrong, function(a, b)
    if p.label[a] ~= p.label[b] then return p.label[a] < p.label[b] end
    return a < b
  end)
  local function grid(indices, what, file, heading)
    if #indices == 0 then
      print(("  (no %s test images: nothing to draw for %s)"):format(what, file))
      return
    end
    local images, captions = {}, {}
    for k, i in ipairs(indices) do
      images[k] = test:image(i)
      captions[k] = caption(classes, p.label[i], p.pred[i], p.confidence[i])
    end
    figs:add(fm.plot.images(images, {
      cols = 10, cell = 110, captions = captions, title = heading,
      file = figs:path(file),
    }), what .. " test images")
  end
  local n_wrong = 0
  for i, y in ipairs(p.label) do if p.pred[i] ~= y then n_wrong = n_wrong + 1 end end
  grid(right, "correctly classified", "correct.png",
    ("%s: correctly classified test images, two of each class (true class, predicted class, "
      .. "confidence)"):format(title))
  grid(wrong, "misclassified", "incorrect.png",
    ("%s: %d of the %d misclassified test images (true class, predicted class, confidence)")
      :format(title, #wrong, n_wrong))
end

-- nb.evaluate(model, test, title, figs, o) -> result: the classification report on the test set,
-- both confusion matrices and the grids of right and wrong predictions.
function M.evaluate(model, test, title, figs, o)
  local result = model:evaluate(test)
  print()
  print(("%s on the test set: accuracy %.4f, loss %.4f, %d images"):format(title, result.accuracy,
    result.loss, result.n))
  print()
  io.write(result:report())
  M.confusion(result, test.classes, title, figs)
  M.prediction_grids(test, M.predictions(model, test), title, figs, o)
  return result
end

-- nb.save_model(model, o, info) -> path: the model in OUTDIR/NAME.fmn with info (train_seconds,
-- test_accuracy, ...) kept in the file, as strings.
function M.save_model(model, o, info)
  for k, v in pairs(info or {}) do
    model.info[k] = math.type(v) == "float" and ("%.6g"):format(v) or tostring(v)
  end
  model.info.seed = tostring(o.seed)
  model.info.quick = o.quick and "yes" or "no"
  local path = o.outdir .. "/" .. o.name .. ".fmn"
  model:save(path)
  print()
  print(("Model saved: %s (%d parameters)"):format(path, model.params))
  return path
end

-- nb.images_per_second(model, ds) -> prediction speed, timed on the wall clock over at least
-- min_seconds.
function M.images_per_second(model, ds, min_seconds)
  min_seconds = min_seconds or 1
  local runs, t0 = 0, M.clock()
  local elapsed
  repeat
    model:predict(ds)
    runs = runs + 1
    elapsed = M.clock() - t0
  until elapsed >= min_seconds or runs >= 1000
  return #ds * runs / math.max(elapsed, 0.01)
end

return M
