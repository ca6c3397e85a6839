-- fmnist.notebook (fm.notebook): notebooks as a sequence of cells, and what the notebooks have in
-- common — their command-line options, the data they train on, aligned tables, the figures they
-- write, training with a table of epochs, learning curves, confusion matrices, grids of right and
-- wrong predictions, saving the model, a wall clock.
--
--   local notebook = require "fmnist.notebook"
--   nb = notebook.new("cnn", arg, {title = "...", about = "...", options = {...}})
--   if not nb then return end                       -- after --help
--   nb:cell("Data", function() fit, val, test = nb:data() end)
--   nb:cell("Train", {needs = {"fit", "val"}}, function()
--     model = fm.CNN{seed = nb.o.seed}
--     history = nb:train(model, fit, val)
--     nb.draw.learning_curves(history, "CNN", nb.figs)
--   end)
--   nb:finish()
--
-- A cell runs as soon as it is declared, with its wall time measured; what it prints, the tables
-- (nb:table) and figures (nb:figure, figs:add) it makes and any error are kept with it. A failed
-- cell is reported and the next ones still run, except those that need (opts.needs) a value it
-- did not make, or fail on a global it was to make: those are "skipped". Ctrl-C while a model
-- trains (nb:train) stops the training and keeps the epochs done; Ctrl-C anywhere else stops the
-- notebook, which still writes its report. Values a cell assigns to globals stay there: after
-- `fmnist-lua -i notebooks/cnn.lua` they are in the REPL, with nb:status(), nb:run(n) and nb.draw.
--
-- The figure functions the notebooks call are in nb.draw (learning_curves, confusion,
-- prediction_grids): a notebook replaces one by assigning nb.draw.confusion = function ... end,
-- and ??nb.draw.confusion at the REPL shows the code to start from.
--
-- Options every notebook takes: [outdir], --out DIR, --epochs N, --seed N, --quick,
-- --format png|svg|pdf, --report DIR, --cells LIST, --list, --help; a notebook may add its own
-- (--models DIR, --retrain) and leave some out.
--
-- The functions of the first version stay, for scripts that call them directly: nb.options,
-- nb.data, nb.train, nb.evaluate, nb.learning_curves, nb.confusion, nb.prediction_grids,
-- nb.save_model, nb.table, nb.figures, ... (each records into the running cell, if any).
local fm = require "fmnist"

local M = {}

-- The quick mode: enough images for every step to run and every figure to have content, few
-- enough that a whole notebook takes seconds (the tests run each one this way).
M.QUICK = { train = 2000, test = 500, epochs = 1 }

-- ---- options ----

local COMMON_OPTIONS = {
  { name = "out", kind = "string", arg = "DIR", default_text = "out/NAME",
    help = "folder for the figures (and the model) (default out/NAME; also the first plain argument)" },
  { name = "epochs", kind = "int", arg = "N", default_text = "the model's own",
    help = "epochs to train (default: the model's own)" },
  { name = "seed", kind = "int", arg = "N", default_text = 1,
    help = "seed of the split, the weights, the batches and the examples shown (default 1)" },
  { name = "quick", kind = "flag", default_text = false,
    help = ("a quick run: %d training and %d test images, %d epoch"):format(M.QUICK.train,
      M.QUICK.test, M.QUICK.epochs) },
  { name = "format", kind = "choice", arg = "FMT", choices = { "png", "svg", "pdf" }, default_text = "png",
    help = "the figures' file format: png, svg or pdf (default png)" },
  { name = "report", kind = "string", arg = "DIR",
    help = "also write a report: DIR/index.html (one file, figures inside) and DIR/index.md" },
  { name = "cells", kind = "cells", arg = "LIST",
    help = "run only these cells, e.g. 1-3,5 (with -i, nb:run(n) runs the others later)" },
  { name = "list", kind = "flag", help = "list the cells and stop" },
  { name = "help", kind = "flag", help = "print this and stop" },
}

-- The usage text: the command, what the notebook does, its options.
local function usage(name, list, about)
  local lines = { ("usage: fmnist-lua notebooks/%s.lua [outdir] [options]"):format(name) }
  if about and about.title then lines[#lines + 1] = about.title end
  if about and about.about then
    lines[#lines + 1] = ""
    local line = " "
    for word in about.about:gmatch("%S+") do
      if #line + #word + 1 > 96 then
        lines[#lines + 1] = line
        line = " "
      end
      line = line .. " " .. word
    end
    lines[#lines + 1] = line
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Options:"
  for _, spec in ipairs(list) do
    local flag = "--" .. spec.name .. (spec.arg and (" " .. spec.arg) or "")
    lines[#lines + 1] = ("  %-16s %s"):format(flag, (spec.help:gsub("NAME", name)))
  end
  return table.concat(lines, "\n")
end

-- An error for the person who ran the notebook: its message is all there is to say, so the
-- program shows it without a traceback (an error object with __tostring, as lua.c treats them).
local UserError = { __tostring = function(e) return e.message end }
local function user_error(message) error(setmetatable({ message = message }, UserError), 0) end
M.user_error = user_error

-- "1-3,5" -> {[1] = true, [2] = true, [3] = true, [5] = true}, or nil.
local function parse_cells(text)
  local set, any = {}, false
  for part in (text .. ","):gmatch("([^,]*),") do
    local a, b = part:match("^%s*(%d+)%s*%-%s*(%d+)%s*$")
    a = a or part:match("^%s*(%d+)%s*$")
    b = b or a
    a, b = tonumber(a), tonumber(b)
    if not a or a < 1 or b < a or b - a > 10000 then return nil end
    for i = a, b do set[i] = true end
    any = true
  end
  return any and set or nil
end

-- nb.options(name, argv [, extra [, omit [, about]]]) -> options, or nil after --help (the usage
-- is printed). extra: more options, {name =, kind = "int"|"number"|"string"|"flag"|"choice",
-- arg =, help =, default = (the value), default_text = (how the report names the default when
-- the value is nil), choices =}; omit: names of common options the notebook has no use
-- for ({"epochs"}); about: {title =, about =} for the usage text.
-- Returns {name, outdir, seed, epochs (nil: the model's default; 1 when quick), quick, format,
-- report, cells, list, given = {option = true, ...}, parameters = {{name, value, default,
-- given}, ...}, ...extra}.
function M.options(name, argv, extra, omit, about)
  local list, by_name, skip = {}, {}, {}
  for _, k in ipairs(omit or {}) do skip[k] = true end
  for _, spec in ipairs(COMMON_OPTIONS) do
    if not skip[spec.name] then list[#list + 1] = spec end
  end
  for _, spec in ipairs(extra or {}) do list[#list + 1] = spec end
  for _, spec in ipairs(list) do by_name[spec.name] = spec end
  local o = { name = name, seed = 1, quick = false, format = "png", given = {} }
  for _, spec in ipairs(extra or {}) do o[spec.name] = spec.default end
  local script = name .. ".lua"
  local function bad(fmt, ...)
    user_error(script .. ": " .. fmt:format(...) .. " (--help lists the options)")
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
        elseif spec.kind == "choice" then
          local ok = false
          for _, c in ipairs(spec.choices) do ok = ok or c == value end
          if not ok then
            bad("option --%s must be one of %s, not '%s'", key, table.concat(spec.choices, ", "), value)
          end
        elseif spec.kind == "cells" then
          local set = parse_cells(value)
          if not set then bad("option --%s needs cell numbers and ranges like 1-3,5, not '%s'", key, value) end
          value = set
          o.cells_text = argv[i]:match("=(.*)$") or argv[i]
        elseif spec.kind == "string" and value == "" then
          bad("option --%s needs a non-empty value", key)
        end
        o[key] = value
      end
      o.given[key] = true
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      bad("unknown option '%s'", a)
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  if o.help then
    print(usage(name, list, about))
    return nil
  end
  if skip.out and #positional > 0 then bad("no plain arguments are taken, got '%s'", positional[1]) end
  if #positional > 1 then bad("one output folder expected, got %d arguments", #positional) end
  if positional[1] and o.out then bad("the output folder is given twice") end
  if o.epochs == 0 then bad("option --epochs must be at least 1") end
  if positional[1] then o.given.out = true end
  if not skip.out then
    o.outdir = (o.out or positional[1] or ("out/" .. name)):gsub("/+$", "")
    if o.outdir == "" then o.outdir = "/" end
  end
  if o.report then
    o.report = o.report:gsub("/+$", "")
    if o.report == "" then o.report = "/" end
  end
  if o.quick and not o.epochs then o.epochs = M.QUICK.epochs end
  -- What the run used: every option with its value and default, for the report.
  o.parameters = {}
  for _, spec in ipairs(list) do
    if spec.name ~= "help" and spec.name ~= "list" then
      local value = spec.name == "out" and o.outdir or spec.name == "cells" and o.cells_text
        or o[spec.name]
      local default = spec.default_text
      if default == nil then default = spec.default end
      if type(default) == "string" then default = default:gsub("NAME", name) end
      o.parameters[#o.parameters + 1] = {
        name = spec.name,
        value = value == nil and (default ~= nil and tostring(default) or "-") or tostring(value),
        default = default == nil and "-" or tostring(default),
        given = o.given[spec.name] or false,
      }
    end
  end
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

-- ---- what the running cell keeps ----

local capture = require "fmnist.capture"

-- The cell running now, while one does: {nb =, cell =, capturing = bool}.
local running = nil

-- Moves what the cell printed so far into its items, as one output item.
local function keep_output()
  if running and running.capturing then
    local text = capture.take()
    if text ~= "" then running.cell.items[#running.cell.items + 1] = { kind = "output", text = text } end
  end
end

-- Records an item of the running cell (nothing when no cell runs); show() prints what the
-- terminal sees of it, which the report leaves out (the item stands for it).
local function record(item, show)
  if not running then
    if show then show() end
    return
  end
  keep_output()
  if show then show() end
  if running.capturing then capture.take() end
  running.cell.items[#running.cell.items + 1] = item
end
M.record = record

-- ---- figures ----

-- The list of figures a notebook writes, printed as they come:
--   figs:path("loss.png") -> "out/logreg/loss.png" (the extension follows --format);
--   figs:add(path, "what it shows")
local Figures = {}
Figures.__index = Figures
M.Figures = Figures

-- nb.figures(outdir [, format]): format "png" (default), "svg" or "pdf" replaces the extension of
-- every name given to figs:path.
function M.figures(outdir, format)
  M.make_dir(outdir)
  return setmetatable({ dir = outdir, list = {}, listing = false, prefix = "", format = format },
    Figures)
end

-- figs.prefix ("cnn_") goes in front of every name, for a notebook that draws the same figures
-- for several models into one folder.
function Figures:path(name)
  if self.format then name = name:gsub("%.%w+$", "") .. "." .. self.format end
  return self.dir .. "/" .. self.prefix .. name
end

-- The figures of a section are listed under one heading "Figures" (nothing is printed when
-- figs.quiet is set). In a cell the figure is kept for the report.
function Figures:add(path, what)
  self.list[#self.list + 1] = path
  record({ kind = "figure", path = path, what = what }, function()
    if self.quiet then return end
    if not self.listing then
      print()
      print("Figures")
      self.listing = true
    end
    print(("  %-40s %s"):format(what, path))
  end)
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

-- nb.table(columns, rows [, opts]): prints rows under aligned headers. A column is {title,
-- format [, volatile = true]}; a format with s is left-aligned (names), any other right-aligned
-- (numbers); volatile marks values that change from run to run (seconds, speeds). A row value
-- may be nil (printed as "-"). opts.text prints that text instead (a layout of its own, such as
-- the classification report), opts.caption names the table in the report. In a cell the table
-- is kept for the report.
function M.table(columns, rows, opts)
  opts = opts or {}
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
  record({ kind = "table", columns = columns, cells = cells, caption = opts.caption }, function()
    if opts.text then
      io.write(opts.text)
      return
    end
    local titles, rule = {}, {}
    for c, col in ipairs(columns) do
      titles[c] = col[1]
      rule[c] = ("-"):rep(widths[c])
    end
    print(line(titles))
    print(table.concat(rule, "  "))
    -- the rows made above (#rows would ask the caller's __len again)
    for r = 1, #cells do print(line(cells[r])) end
  end)
end

-- nb.say(text): prints a paragraph of explanation; in a cell the report shows it as prose, not
-- as output.
function M.say(text)
  record({ kind = "prose", text = (text:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")) }, function()
    print(text)
  end)
end

-- ---- data ----

-- nb.data(o) -> fit, val, test: the training set split 90/10 (stratified, o.seed) into the images
-- trained on and the validation images, and the test set. Quick: a stratified sample of each.
-- Prints which files each set came from (and fm.load's warning when they come from different
-- places).
function M.data(o)
  local train, test = fm.load("train"), fm.load("test")
  print(train)
  print(test)
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

-- The settings fit will use: the model's defaults (model.defaults) with the options given.
local function training_settings(model, fit_opts)
  local d = model.defaults
  local rows = {}
  local function show(v)
    if type(v) ~= "table" then return tostring(v) end
    local parts = {} -- augment = {crop =, flip =, erase =}
    for _, k in ipairs { "crop", "flip", "erase" } do
      if v[k] == true then
        parts[#parts + 1] = k
      elseif v[k] ~= nil and v[k] ~= 0 and v[k] ~= false then
        parts[#parts + 1] = k .. " " .. tostring(v[k])
      end
    end
    return #parts > 0 and table.concat(parts, ", ") or "none"
  end
  for _, key in ipairs { "epochs", "batch", "lr", "optimizer", "nesterov", "schedule", "warmup",
                         "weight_decay", "label_smoothing", "augment" } do
    local given = fit_opts[key]
    local value = given
    if value == nil then value = d[key] end
    local epochs = fit_opts.epochs or d.epochs
    if key == "warmup" and given == nil and epochs < d.epochs then -- as fit scales it
      value = value * epochs / d.epochs
    end
    -- the newer settings are shown when given or on: a model without them reads as before
    local off = given == nil and (value == 0 or value == false)
      and (key == "warmup" or key == "label_smoothing" or key == "augment" or key == "nesterov")
    if key == "augment" and value == false then value = "none" end
    if value ~= nil and not off then
      rows[#rows + 1] = { key, show(value), given ~= nil and "given" or "the model's default" }
    end
  end
  rows[#rows + 1] = { "seed", tostring(fit_opts.seed), "given" }
  return rows
end

-- A history from the epoch records fit handed to on_epoch, for a training that ended early
-- with an error (Ctrl-C): the same shape as fit's own.
local function history_of(records)
  local h = { loss = {}, accuracy = {}, val_loss = {}, val_accuracy = {}, seconds = {} }
  for e, rec in ipairs(records) do
    h[e] = rec
    for _, key in ipairs { "loss", "accuracy", "val_loss", "val_accuracy", "seconds" } do
      if rec[key] then h[key][#h[key] + 1] = rec[key] end
    end
  end
  if #h.val_loss == 0 then h.val_loss, h.val_accuracy = nil, nil end
  h.epochs = #records
  return h
end

-- nb.train(model, fit, val, o [, fit_opts]) -> history, seconds: the model's summary, the
-- training settings, training with the progress on stderr, then the table of epochs. seconds is
-- the wall-clock time of the epochs. fit_opts go to model:fit (epochs, seed and validation come
-- from o and val unless given). Ctrl-C during training stops it after the current batch: the
-- model keeps what it learnt, the history holds the complete epochs and says
-- history.stopped = "interrupted (Ctrl-C) ...", and the notebook goes on.
function M.train(model, fit, val, o, fit_opts)
  local opts = {}
  for k, v in pairs(fit_opts or {}) do opts[k] = v end
  if opts.epochs == nil then opts.epochs = o.epochs end
  if opts.seed == nil then opts.seed = o.seed end
  if opts.validation == nil then opts.validation = val end
  model:summary()
  print()
  M.table({ { "setting", "%s" }, { "value", "%s" }, { "from", "%s" } }, training_settings(model, opts),
    { caption = "training settings" })
  print()
  local epochs = opts.epochs or model.defaults.epochs
  print(("Training on %d images for %s, %s (progress on stderr)"):format(#fit,
    M.plural(epochs, "epoch"), opts.validation and ("validating on %d after each epoch")
      :format(#opts.validation) or "without validation"))
  io.stdout:flush()
  local records, user_on_epoch = {}, opts.on_epoch
  opts.on_epoch = function(e, rec)
    records[#records + 1] = rec
    if user_on_epoch then return user_on_epoch(e, rec) end
  end
  local ok, history = pcall(model.fit, model, fit, opts)
  if not ok then
    if not tostring(history):find("fit: interrupted", 1, true) then error(history, 0) end
    local epoch = #records + 1
    history = history_of(records)
    history.stopped = ("interrupted (Ctrl-C) during epoch %d: the history has the %s before it; "
      .. "the model keeps all it learnt"):format(epoch, M.plural(#records, "complete epoch"))
    history.interrupted = true
  end
  if history.interrupted then
    io.stderr:write("Training interrupted by Ctrl-C; the notebook goes on with the model as it is\n")
  end
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
    { "val accuracy", "%.4f" }, { "learning rate", "%.2e" }, { "seconds", "%.1f", volatile = true } },
    rows, { caption = "epochs" })
end

-- ---- figures the notebooks share: nb.draw ----

-- The figure functions of the model notebooks. A notebook's nb.draw starts as this table and may
-- replace any of them (nb.draw.confusion = function(result, classes, title, figs) ... end); the
-- nb.learning_curves, nb.confusion and nb.prediction_grids of the module are these.
M.draw = {}

-- draw.learning_curves(history, title, figs): loss and accuracy per epoch, training and
-- validation.
function M.draw.learning_curves(history, title, figs)
  local function series(train, val)
    local list = { { name = "training", values = train } }
    if val and #val > 0 then list[2] = { name = "validation", values = val } end
    return list
  end
  if #history == 0 then
    print("  (no complete epoch: no learning curves to draw)")
    return
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
M.learning_curves = M.draw.learning_curves

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

-- draw.confusion(result, classes, title, figs): the confusion matrix as counts and
-- row-normalised.
function M.draw.confusion(result, classes, title, figs)
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
M.confusion = M.draw.confusion

-- "true: Coat\npred: Shirt\n87%": the captions of predicted images.
local function caption(classes, label, pred, confidence)
  return ("true: %s\npred: %s\n%.0f%%"):format(classes[label + 1], classes[pred + 1],
    100 * confidence)
end

-- A deterministic shuffle of a list (Fisher-Yates on a splitmix64 generator of its own, so that
-- Lua's math.random is left as the user seeded it).
-- The list is read raw: a __len or __index of a table passed in would decide how long the copy is
-- (2^62 entries) and what it holds.
local function shuffled(list, seed)
  if type(list) ~= "table" then error("shuffled: a list expected, got " .. type(list), 2) end
  if math.type(seed) ~= "integer" then
    error("shuffled: the seed must be an integer, got " .. tostring(seed), 2)
  end
  local out = {}
  for i = 1, rawlen(list) do out[i] = rawget(list, i) end
  local state = seed -- integers wrap around: arithmetic mod 2^64
  for i = #out, 2, -1 do
    state = state + 0x9E3779B97F4A7C15
    local z = state
    z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ~ (z >> 27)) * 0x94D049BB133111EB
    z = z ~ (z >> 31)
    local j = (z >> 1) % i + 1
    out[i], out[j] = out[j], out[i]
  end
  return out
end
M.shuffled = shuffled

-- draw.prediction_grids(test, p, title, figs, o): two correctly classified test images of each
-- class, and twenty misclassified ones picked at random, each captioned with its true class,
-- predicted class and confidence. p: nb.predictions(model, test).
function M.draw.prediction_grids(test, p, title, figs, o)
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
M.prediction_grids = M.draw.prediction_grids

-- draw.saliency(model, test, title, figs, o): each of k test images of every class beside its
-- saliency map for its true class (SmoothGrad over o.samples noisy copies), the wrong ones
-- captioned with what the model took them for. o: {k = 3, samples = 16, seed =}.
function M.draw.saliency(model, test, title, figs, o)
  local explain = require "fmnist.explain"
  local k, samples = o.k or 3, o.samples or 16
  local some = test:subset(explain.per_class(test, k, o.seed))
  local x, labels = some:images(), some:labels()
  local y, pred = labels:totable(), model:predict(x):totable()
  local sal = explain.saliency(model, x, labels, { samples = samples, noise = 0.15, seed = o.seed })
  local classes = test.classes
  local list, captions = {}, {}
  for j = 1, #y do
    local name = classes[y[j] + 1]
    list[#list + 1] = x[j]:reshape(28, 28)
    captions[#captions + 1] = pred[j] == y[j] and name or (name .. "\n(as " .. classes[pred[j] + 1] .. ")")
    list[#list + 1] = sal[j]:reshape(28, 28)
    captions[#captions + 1] = "saliency"
  end
  figs:add(fm.plot.images(list, {
    cols = 2 * k, cell = 110, captions = captions, palette = "magma", range = { 0, 1 },
    cblabel = "pixel value (image); |gradient| / its 99th percentile (saliency)",
    title = title .. ": saliency maps, |gradient of the true class's score| at each pixel\n"
      .. ("(averaged over %d noisy copies of each image: SmoothGrad)"):format(samples),
    file = figs:path("saliency.png"),
  }), ("saliency maps (%d images per class)"):format(k))
end

-- The classification report as a table: one row per class, then accuracy and the averages.
local function report_rows(result)
  local rows = {}
  for c, name in ipairs(result.classes) do
    if result.present[c] then
      rows[#rows + 1] = { name, result.precision[c], result.recall[c], result.f1[c], result.support[c] }
    end
  end
  rows[#rows + 1] = { "accuracy", nil, nil, result.accuracy, result.n }
  rows[#rows + 1] = { "macro avg", result.macro.precision, result.macro.recall, result.macro.f1, result.n }
  rows[#rows + 1] = { "weighted avg", result.weighted.precision, result.weighted.recall,
    result.weighted.f1, result.n }
  return rows
end

-- nb.evaluate(model, test, title, figs, o [, draw]) -> result: the classification report on the
-- test set, both confusion matrices and the grids of right and wrong predictions (drawn by
-- draw, default nb.draw).
function M.evaluate(model, test, title, figs, o, draw)
  draw = draw or M.draw
  local result = model:evaluate(test)
  print()
  print(("%s on the test set: accuracy %.4f, loss %.4f, %d images"):format(title, result.accuracy,
    result.loss, result.n))
  print()
  M.table({ { "class", "%s" }, { "precision", "%.2f" }, { "recall", "%.2f" }, { "f1-score", "%.2f" },
    { "support", "%d" } }, report_rows(result), { text = result:report(),
    caption = "classification report" })
  draw.confusion(result, test.classes, title, figs)
  draw.prediction_grids(test, M.predictions(model, test), title, figs, o)
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

-- ---- the notebook: cells ----

local Notebook = {}
Notebook.__index = Notebook
M.Notebook = Notebook

-- The report being made, while fmnist-lua report (or a notebook's --report) runs notebooks:
-- {dir =, notebooks = {nb, ...}, argv =, date =, started =, finished =, owner =, outdir =}.
-- session.outdir(name), when set, says where a notebook without an output folder of its own
-- writes its figures and model.
M.session = nil

-- A new session writing its report into dir; argv is the command line it came from.
function M.begin_session(dir, argv)
  local session = { dir = dir, notebooks = {}, argv = argv or {}, started = M.clock(),
    date = os.date("!%Y-%m-%d %H:%M:%S UTC") }
  M.session = session
  return session
end

-- The _ENV of the function `level` levels up (the notebook script), or _G.
local function caller_env(level)
  local info = debug.getinfo(level + 1, "f")
  local f = info and info.func
  for i = 1, 255 do
    local name, value = debug.getupvalue(f, i)
    if not name then break end
    if name == "_ENV" then return value end
  end
  return _G
end

-- The command line of a script run by fmnist-lua or lua: arg[-k] .. arg[#arg].
local function command_line(env)
  local a = rawget(env, "arg") or rawget(_G, "arg")
  if type(a) ~= "table" then return {} end
  local lo = 0
  while a[lo - 1] ~= nil do lo = lo - 1 end
  local words = {}
  for i = lo, #a do words[#words + 1] = tostring(a[i]) end
  return words
end

-- notebook.new(name, argv, spec) -> nb, or nil after --help. spec: title, about (a paragraph for
-- --help and the report), options (the notebook's own, as for nb.options), omit (common options
-- it has no use for). Prints the title. The notebook's globals are those of the calling script.
function M.new(name, argv, spec)
  spec = spec or {}
  if type(name) ~= "string" or not name:match("^[%w_%-]+$") then
    error("notebook.new: the name must be a word such as \"cnn\", got " .. tostring(name), 2)
  end
  local o = M.options(name, argv, spec.options, spec.omit, spec)
  if not o then return nil end
  local env = caller_env(2)
  local source = debug.getinfo(2, "S").source
  local nb = setmetatable({
    name = name, title = spec.title or name, about = spec.about, o = o, parameters = o.parameters,
    cells = {}, env = env, script = source:match("^@(.*)$"), started = M.clock(),
    listing = o.list, draw = setmetatable({}, { __index = M.draw }), values = {},
  }, Notebook)
  local session = M.session
  if session then
    session.notebooks[#session.notebooks + 1] = nb
    nb.session = session
    if o.outdir and not o.given.out and session.outdir then o.outdir = session.outdir(name) end
  elseif o.report and not o.list then
    session = M.begin_session(o.report, command_line(env))
    session.owner = nb
    session.notebooks[1] = nb
    nb.session = session
    if o.outdir and not o.given.out then o.outdir = o.report end
  end
  for _, p in ipairs(o.parameters) do
    if p.name == "out" then p.value = o.outdir end
  end
  if nb.listing then return nb end
  if o.outdir then nb.figs = M.figures(o.outdir, o.format) end
  print(nb.title)
  print(("="):rep(utf8.len(nb.title) or #nb.title))
  return nb
end

-- A shallow copy of the globals, to see what a cell changes.
local function snapshot(env)
  local copy = {}
  for k, v in next, env do copy[k] = v end
  return copy
end

local IGNORED_GLOBALS = { _ = true, nb = true }

-- The globals a cell assigned (new, or given a new value), sorted.
local function changed(before, env)
  local names = {}
  for k, v in next, env do
    if type(k) == "string" and before[k] ~= v and not IGNORED_GLOBALS[k] then names[#names + 1] = k end
  end
  table.sort(names)
  return names
end

local function cell_label(cell) return ("cell %d '%s'"):format(cell.n, cell.title) end

-- Runs one cell of nb: heading, capture (for a report), timing, and what became of it.
local function run_cell(self, cell)
  cell.items, cell.error, cell.reason, cell.defined = {}, nil, nil, {}
  local env = self.env
  for _, name in ipairs(cell.needs or {}) do
    if env[name] == nil then
      cell.status = "skipped"
      cell.reason = ("Not run: it needs '%s', which no cell before it made (%s)."):format(name,
        #self:failed() > 0 and ("failed: " .. table.concat(self:failed(), ", ")) or "none failed")
      print()
      print(("%d. %s  [skipped: needs %s]"):format(cell.n, cell.title, name))
      return cell
    end
  end
  if self.figs then self.figs.listing = false end
  print()
  local heading = ("%d. %s"):format(cell.n, cell.title)
  print(heading)
  print(("-"):rep(utf8.len(heading) or #heading))
  io.stdout:flush()
  local before = snapshot(env)
  local capturing = self.session ~= nil and not capture.active()
  if capturing then capture.start(true) end
  running = { nb = self, cell = cell, capturing = capturing }
  local t0 = M.clock()
  local ok, err = xpcall(cell.fn, function(e)
    return { message = tostring(e), traceback = debug.traceback(tostring(e), 2) }
  end)
  cell.seconds = M.clock() - t0
  keep_output()
  running = nil
  if capturing then
    local rest = capture.stop()
    if rest ~= "" then cell.items[#cell.items + 1] = { kind = "output", text = rest } end
  end
  cell.defined = changed(before, env)
  for _, name in ipairs(cell.defined) do self.values[name] = true end
  if ok then
    cell.status = "ok"
    print(("[%d. %s: %.1f s]"):format(cell.n, cell.title, cell.seconds))
    return cell
  end
  local message = err.message
  local missing = message:match("%(global '([%w_]+)'%)")
  if message:find("interrupted!", 1, true) or message:find("fit: interrupted", 1, true) then
    cell.status = "interrupted"
    self.interrupted = cell
  elseif missing and env[missing] == nil and #self:failed() > 0 then
    cell.status = "skipped"
    cell.reason = ("Not run to the end: it needs '%s', which a failed cell was to make (%s).")
      :format(missing, table.concat(self:failed(), ", "))
  else
    cell.status = "failed"
  end
  cell.error = err
  cell.items[#cell.items + 1] = { kind = "error", message = ("%s %s: %s"):format(cell_label(cell),
    cell.status, message), traceback = err.traceback }
  io.stdout:flush()
  io.stderr:write(("%s.lua: %s %s: %s\n"):format(self.name, cell_label(cell), cell.status,
    cell.status == "failed" and err.traceback or message))
  if cell.reason then io.stderr:write(cell.reason, "\n") end
  return cell
end

-- The labels of the cells that failed or were interrupted.
function Notebook:failed()
  local list = {}
  for _, c in ipairs(self.cells) do
    if c.status == "failed" or c.status == "interrupted" then list[#list + 1] = cell_label(c) end
  end
  return list
end

-- nb:cell(title [, opts], fn): declares a cell and runs it now (unless --cells leaves it out, the
-- notebook was interrupted, or --list only lists). opts.needs: names of globals it needs; when
-- one is nil the cell is skipped.
function Notebook:cell(title, opts, fn)
  if fn == nil then fn, opts = opts, {} end
  if type(title) ~= "string" then error("nb:cell: the title must be a string", 2) end
  if type(opts) ~= "table" then error("nb:cell: the options must be a table", 2) end
  if type(fn) ~= "function" then error("nb:cell: a function is needed after the title", 2) end
  for k in pairs(opts) do
    if k ~= "needs" then error(("nb:cell: unknown option '%s' (known: needs)"):format(tostring(k)), 2) end
  end
  local cell = { n = #self.cells + 1, title = title, fn = fn, needs = opts.needs, status = "not run",
    items = {} }
  self.cells[#self.cells + 1] = cell
  if self.listing then return cell end
  if self.interrupted then
    cell.reason = "Not run: the notebook was interrupted (Ctrl-C) in " .. cell_label(self.interrupted) .. "."
    return cell
  end
  if self.o.cells and not self.o.cells[cell.n] then
    cell.reason = ("Not run: --cells %s leaves it out (nb:run(%d) runs it)."):format(self.o.cells_text, cell.n)
    print()
    print(("%d. %s  [not run: --cells %s]"):format(cell.n, title, self.o.cells_text))
    return cell
  end
  return run_cell(self, cell)
end

-- nb:run([which]): runs a cell again, by number or by (part of) its title; with no argument the
-- cells not run yet, in order. For the REPL after `fmnist-lua -i notebooks/X.lua --cells 1-2`.
function Notebook:run(which)
  self.interrupted = nil
  if which == nil then
    for _, c in ipairs(self.cells) do
      if c.status == "not run" then run_cell(self, c) end
      if self.interrupted then break end
    end
    return
  end
  local found
  if math.type(which) == "integer" then
    found = self.cells[which]
  elseif type(which) == "string" then
    for _, c in ipairs(self.cells) do
      if not found and c.title:lower():find(which:lower(), 1, true) then found = c end
    end
  end
  if not found then
    local names = {}
    for _, c in ipairs(self.cells) do names[#names + 1] = ("%d %s"):format(c.n, c.title) end
    error(("nb:run: no cell %s (the cells: %s)"):format(tostring(which), table.concat(names, "; ")), 2)
  end
  run_cell(self, found)
end

-- The table nb:status prints.
local function status_table(self)
  local rows = {}
  for _, c in ipairs(self.cells) do
    rows[#rows + 1] = { c.n, c.title, c.status, c.seconds, table.concat(c.defined or {}, " ") }
  end
  return { { "#", "%d" }, { "cell", "%s" }, { "status", "%s" }, { "seconds", "%.1f", volatile = true },
    { "values it made", "%s" } }, rows
end

-- nb:status(): prints the cells with their status, time and the globals each made.
function Notebook:status()
  local columns, rows = status_table(self)
  M.table(columns, rows)
end

-- nb:banner() -> the lines the REPL shows after the notebook ran (fmnist-lua -i).
function Notebook:banner()
  local names = {}
  for name in pairs(self.values) do names[#names + 1] = name end
  table.sort(names)
  local failed = #self:failed()
  return ("Notebook %s: %d cells%s. Its values are globals: %s.\n"
    .. "nb:status() lists the cells, nb:run(n) runs one again, nb.draw holds its figure functions "
    .. "(help(nb) for more).\n"):format(self.script or self.name, #self.cells,
    failed > 0 and (", " .. failed .. " failed") or "", #names > 0 and table.concat(names, ", ") or "none")
end

-- nb:report([dir]) -> html, md: writes the report of what ran so far (to dir, --report's folder
-- or the output folder). Outputs are kept only when the cells ran for a report (--report).
function Notebook:report(dir)
  local report = require "fmnist.report"
  local session = self.session
  if not session or dir then
    session = { dir = dir or self.o.report or self.o.outdir, notebooks = { self },
      argv = command_line(self.env), started = self.started, date = os.date("!%Y-%m-%d %H:%M:%S UTC") }
  end
  session.finished = M.clock()
  return report.write(session)
end

-- nb:finish(): the list of cells with their times; the report when this notebook makes one; an
-- error when a cell failed or was interrupted (after the report is written).
function Notebook:finish()
  if self.finished then return end
  self.finished = true
  if self.listing then
    print(("%s: %d cells"):format(self.script or self.name, #self.cells))
    for _, c in ipairs(self.cells) do print(("  %2d  %s"):format(c.n, c.title)) end
    return
  end
  print()
  print("Cells")
  self:status()
  print(("%s in %.1f s"):format(M.plural(#self.cells, "cell"), M.clock() - self.started))
  if self.session and self.session.owner == self then
    self.session.finished = M.clock()
    local html, md = require("fmnist.report").write(self.session)
    print(("Report: %s and %s"):format(html, md))
    M.session = nil
  end
  if self.interrupted then
    user_error(("%s.lua: interrupted (Ctrl-C) in %s"):format(self.name, cell_label(self.interrupted)))
  end
  local failed = self:failed()
  if #failed > 0 then
    user_error(("%s.lua: %d of %d cells failed: %s"):format(self.name, #failed, #self.cells,
      table.concat(failed, ", ")))
  end
end

-- nb:set_option(name, value, why): changes an option after the command line was read (explain
-- and compare take the models of the report they are in), so that nb.o and the parameters the
-- report lists agree.
function Notebook:set_option(name, value, why)
  self.o[name] = value
  for _, p in ipairs(self.parameters) do
    if p.name == name then
      p.value = tostring(value)
      p.note = why
    end
  end
end

-- The module's helpers as methods, with the notebook's options, figures and nb.draw.
function Notebook:data() return M.data(self.o) end
function Notebook:train(model, fit, val, fit_opts) return M.train(model, fit, val, self.o, fit_opts) end
function Notebook:evaluate(model, test, title)
  return M.evaluate(model, test, title, self.figs, self.o, self.draw)
end
function Notebook:save_model(model, info) return M.save_model(model, self.o, info) end
function Notebook:path(name) return self.figs:path(name) end
function Notebook:figure(path, what) return self.figs:add(path, what) end
function Notebook:table(columns, rows, opts) return M.table(columns, rows, opts) end
function Notebook:say(text) return M.say(text) end

return M
