-- tune.lua: hyperparameter search for the MLP and the CNN on Fashion-MNIST, against their defaults.
--
--   fmnist-lua notebooks/tune.lua [outdir] [--seed N] [--workers N] [--quick]
--
-- Successive halving (fm.tune, method = "halving") in worker processes, one trial per core on one
-- thread each: the MLP over learning rate, hidden layers, dropout and batch size on the 60,000
-- training images (10% held out, stratified, to score the trials); the CNN, with a smaller budget,
-- over learning rate, filters, dropout and batch size on 20,000 of them. The defaults are trained
-- the same way (same data, seed and epochs as the search's last rung), so that the two compare
-- fairly. Prints every trial, the best parameters against the defaults and the test accuracy of
-- both; draws each search's optimisation history and each parameter against the validation
-- accuracy, and a bar chart of the test accuracies. The test set is used only at the end.
-- Results go to outdir (default out/tune): a folder per search with trials.jsonl and best.fmn.
-- Running it again resumes the searches where they stopped (Ctrl-C keeps finished trials).
-- About 3 minutes on two cores; --quick runs tiny searches on 2,000 images in seconds.
local fm = require "fmnist"
local nb = require "fmnist.notebook"
local json = require "fmnist.json"

local o = nb.options("tune", arg, {
  { name = "workers", kind = "int", arg = "N", help = "worker processes (default: one per core)" },
}, { "epochs" })
if not o then return end
local wall0 = nb.clock()
local figs = nb.figures(o.outdir)
local tune = fm.tune

-- The budgets: halving starts `trials` configurations on 1 epoch and keeps the best third (eta 3)
-- for three times the epochs, up to `epochs`.
local BUDGET = o.quick and {
  mlp = { images = nb.QUICK.train, trials = 4, eta = 2, epochs = 2 },
  cnn = { images = nb.QUICK.train // 2, trials = 2, eta = 2, epochs = 1 },
} or {
  mlp = { trials = 27, eta = 3, epochs = 27 },
  cnn = { images = 20000, trials = 9, eta = 3, epochs = 9 },
}
local suffix = o.quick and "-quick" or ""

-- The reference CNN with the first convolution's filters (the second has twice as many) and the
-- dropout before the last layer as parameters: filters 32 and dropout 0.5 give fm.CNN{}'s net.
local function cnn_layers(filters, dropout)
  return { { "conv2d", filters, 3 }, "relu", { "maxpool", 2 }, { "conv2d", 2 * filters, 3 }, "relu",
           { "maxpool", 2 }, "flatten", { "dense", 128 }, "relu", { "dropout", dropout }, { "dense", 10 } }
end

local MODELS = {
  {
    name = "MLP", key = "mlp",
    model = function(p) return fm.MLP { hidden = p.hidden, dropout = p.dropout } end,
    space = {
      lr = tune.loguniform(1e-4, 3e-3),
      hidden = tune.choice { { 128 }, { 256 }, { 512 }, { 256, 128 }, { 512, 256 }, { 512, 256, 128 } },
      dropout = tune.uniform(0, 0.5),
      batch = tune.choice { 32, 64, 128 },
    },
    defaults = { lr = 1e-3, hidden = { 256, 128 }, dropout = 0.2, batch = 64 },
  },
  {
    name = "CNN", key = "cnn",
    model = function(p) return fm.CNN { layers = cnn_layers(p.filters, p.dropout) } end,
    space = {
      lr = tune.loguniform(2e-4, 3e-3),
      filters = tune.choice { 16, 32, 48 },
      dropout = tune.uniform(0.2, 0.6),
      batch = tune.choice { 32, 64, 128 },
    },
    defaults = { lr = 1e-3, filters = 32, dropout = 0.5, batch = 32 },
  },
}

local function show(v)
  if math.type(v) == "float" then return ("%.4g"):format(v) end
  if type(v) == "table" then return json.encode(v) end
  return tostring(v)
end

local test = fm.load("test")
if o.quick then test = (test:split(nb.QUICK.test / #test, { seed = o.seed, stratify = true })) end
local summary = {}

for _, m in ipairs(MODELS) do
  local b = BUDGET[m.key]
  figs:section(("%s: successive halving over %d configurations"):format(m.name, b.trials))
  local search = {
    model = m.model, space = m.space, method = "halving", trials = b.trials, eta = b.eta,
    epochs = b.epochs, images = b.images, seed = o.seed, workers = o.workers,
    dir = ("%s/%s%s"):format(o.outdir, m.key, suffix),
  }
  local t0 = nb.clock()
  local results = tune(search)
  local search_seconds = nb.clock() - t0
  local best = results[1]
  if not best or best.status ~= "ok" then error("tune.lua: no " .. m.name .. " trial finished", 0) end

  -- the defaults as a search of one point: the same data, seeds and epochs as the best trial
  local one = {}
  for k, v in pairs(m.defaults) do one[k] = tune.choice { v } end
  local t1 = nb.clock()
  local default = tune {
    model = m.model, space = one, method = "grid", epochs = best.epochs, images = b.images,
    seed = o.seed, workers = 0, verbose = false, dir = ("%s/%s-default%s"):format(o.outdir, m.key, suffix),
  }
  default = default[1]
  local default_seconds = nb.clock() - t1

  local tuned_model = fm.load_model(search.dir .. "/best.fmn")
  local default_model = fm.load_model(("%s/%s-default%s/best.fmn"):format(o.outdir, m.key, suffix))
  local tuned_test = tuned_model:evaluate(test).accuracy
  local default_test = default_model:evaluate(test).accuracy

  print()
  print(("%s: the best of %d trials (trial %d, %s) against the defaults, both trained %s on %d images:")
    :format(m.name, #results, best.trial, nb.plural(best.epochs, "epoch"), nb.plural(best.epochs, "epoch"),
      #(select(1, tune.data(search)))))
  local rows = {}
  local names = {}
  for k in pairs(m.space) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do rows[#rows + 1] = { k, show(m.defaults[k]), show(best.params[k]) } end
  rows[#rows + 1] = { "validation accuracy", ("%.4f"):format(default.score), ("%.4f"):format(best.score) }
  rows[#rows + 1] = { "test accuracy", ("%.4f"):format(default_test), ("%.4f"):format(tuned_test) }
  nb.table({ { "", "%s" }, { "default", "%s" }, { "tuned", "%s" } }, rows)
  print(("Search: %.1f s for %d trials (%.1f s of training in all, on %d workers); the defaults: %.1f s.")
    :format(search_seconds, #results, (function()
      local s = 0
      for _, r in ipairs(results) do s = s + (r.seconds or 0) end
      return s
    end)(), o.workers or fm.process.cpus(), default_seconds))

  figs:add(search.dir .. "/history.png", m.name .. ": optimisation history")
  for _, k in ipairs(names) do
    local path = search.dir .. "/param-" .. k .. ".png"
    if nb.exists(path) then figs:add(path, m.name .. ": " .. k .. " against the score") end
  end
  summary[#summary + 1] = { name = m.name, default = default_test, tuned = tuned_test }
end

figs:section("Test accuracy, default against tuned")
local default_acc, tuned_acc, labels = {}, {}, {}
for i, s in ipairs(summary) do
  default_acc[i], tuned_acc[i], labels[i] = s.default, s.tuned, s.name
  print(("%-4s default %.4f  tuned %.4f  (%+.2f points)"):format(s.name, s.default, s.tuned,
    100 * (s.tuned - s.default)))
end
figs:add(fm.plot.bar({ { name = "default", values = default_acc }, { name = "tuned", values = tuned_acc } }, {
  labels = labels, values = true, title = "Test accuracy", ylabel = "accuracy",
  file = figs:path("test_accuracy.png") }), "test accuracy of the defaults and the tuned models")

fm.plot.close()
print()
print(("%d figures in %s; %.0f s"):format(#figs.list, o.outdir, nb.clock() - wall0))
