-- Help text of the hyperparameter search (lua/fmnist/tune.lua, lua/fmnist/cmd_tune.lua): see
-- lua/fmnist/help.lua.
local doc = require("fmnist.help").section("Hyperparameter search", 45, [[
fm.tune searches hyperparameters — grid, random or successive halving — training each trial in a
worker process (one thread each, so results do not depend on where a trial ran), writing every
result to files that several hosts can share, resuming where it stopped, keeping the best model
(best.fmn) and plotting the search (history.png, param-NAME.png). `fmnist-lua tune SPEC.lua`
runs one from a shell; --trial N and --collect spread it over GNU parallel or a Slurm array.]])

-- The tiny search the examples share: two trials of logistic regression on 300 images. Run again
-- in the same folder it resumes, so later examples find it done.
local SEARCH = [[
local search = {
  model = function(p) return fm.LogReg{l2 = p.l2} end,
  space = {l2 = fm.tune.loguniform(1e-5, 1e-2), batch = fm.tune.choice{32, 64}},
  trials = 2, epochs = 1, images = 300, seed = 1, dir = "out/tune-logreg", workers = 0,
  verbose = false,
}
]]

doc {
  name = "fm.tune",
  sig = "fm.tune(description | \"search.lua\" [, overrides]) -> records",
  text = [[
Runs a search and returns its records, best first (failed trials last). The description (a table,
or a Lua file returning one): model = function(params, info) -> a model; space = {name =
fm.tune.uniform | loguniform | int | choice}; method "random" (default), "grid" or "halving";
trials; epochs; eta and min_epochs (halving); metric "val_accuracy" (default) or "val_loss"; fit =
a table of fit options (parameters named like fit options, such as lr or batch, go to fit too) or
function(params) -> one; data = function() -> training [, validation] set (default the training
images, `validation` = 0.1 held out, `images = N` a stratified sample); seed; workers (0: in this
process); dir (required); verbose. Rerunning resumes; Ctrl-C stops and keeps what finished. A
record: {trial, config, rung, epochs, params, status = "ok" | "error" | "diverged" | "skipped",
score, metric, history, error, seconds, host, pid, ...}.]],
  options = {
    { "dir", "overrides the description's folder" },
    { "workers", "overrides the number of worker processes" },
    { "verbose", "overrides whether a line is printed per trial" },
  },
  example = SEARCH .. [[
local records = fm.tune(search)
print(#records, records[1].status, records[1].metric)   --> 2 ok val_accuracy
]],
  needs = "dataset",
  see = { "fm.tune.load", "fm.tune.table" },
}

doc {
  name = "fm.tune.run",
  sig = "fm.tune.run(description | file [, overrides]) -> records",
  text = [[The same as fm.tune(...): runs (or resumes) a search and returns its records, best first.]],
  example = SEARCH .. [[
print(#fm.tune.run(search))   --> 2
]],
  needs = "dataset",
}

doc {
  name = "fm.tune.uniform",
  sig = "fm.tune.uniform(lo, hi) -> parameter",
  text = [[A float drawn evenly from [lo, hi] (dropout, momentum). lo < hi, both finite.]],
  example = [[
print(fm.tune.uniform(0, 0.5))   --> fm.tune.uniform(0.0, 0.5)
]],
}

doc {
  name = "fm.tune.loguniform",
  sig = "fm.tune.loguniform(lo, hi) -> parameter",
  text = [[A float whose logarithm is drawn evenly from [log lo, log hi]: learning rates, L2 penalties. 0 < lo < hi.]],
  example = [[
print(fm.tune.loguniform(1e-4, 1e-2))   --> fm.tune.loguniform(0.0001, 0.01)
print(pcall(fm.tune.loguniform, 0, 1))   --> false tune: loguniform: the low end must be above 0, got 0
]],
}

doc {
  name = "fm.tune.int",
  sig = "fm.tune.int(lo, hi [, opts]) -> parameter",
  text = [[An integer from lo to hi, both included; with log = true drawn evenly in its logarithm (layer sizes).]],
  options = {
    { "log", "true: drawn evenly in log(value) (lo at least 1)" },
  },
  example = [[
print(fm.tune.int(16, 512, {log = true}))   --> fm.tune.int(16, 512, {log = true})
]],
}

doc {
  name = "fm.tune.choice",
  sig = "fm.tune.choice{v1, v2, ...} -> parameter",
  text = [[
One of the values, each as likely: numbers, strings, booleans or plain tables of them (layer
sizes {256, 128}). A grid takes every one. A value twice is an error.]],
  example = [[
print(fm.tune.choice{128, 256, {256, 128}})   --> fm.tune.choice{128, 256, [256,128]}
]],
}

doc {
  name = "fm.tune.load",
  sig = "fm.tune.load(dir) -> records",
  text = [[
The records of the search in dir, best first, failed trials last — read from its files, whoever
wrote them (this process, workers, other hosts). A folder without search.json is an error.]],
  example = SEARCH .. [[
fm.tune(search)
local best = fm.tune.load("out/tune-logreg")[1]
print(best.status, type(best.score), best.params.batch ~= nil)   --> ok number true
]],
  needs = "dataset",
}

doc {
  name = "fm.tune.table",
  sig = "fm.tune.table(records [, opts]) -> string",
  text = [[The records as a text table: rank, trial, (epochs for halving), the score, each parameter, seconds, status.]],
  options = {
    { "top", "only the first top rows" },
  },
  example = SEARCH .. [[
fm.tune(search)
print(fm.tune.table(fm.tune.load("out/tune-logreg"), {top = 1}):match("^[^\n]+"))   --> rank trial val_accuracy batch l2 seconds status
]],
  needs = "dataset",
}

doc {
  name = "fm.tune.spec",
  sig = "fm.tune.spec(description | file [, overrides]) -> search",
  text = [[
The checked search without running it: search.total (trials in all), search.method, search.plan
(the rungs), search.names (the parameters). Every mistake in a description is an error here,
naming the field.]],
  example = SEARCH .. [[
local S = fm.tune.spec(search)
print(S.total, S.method, S.names[1], S.names[2])   --> 2 random batch l2
]],
}

doc {
  name = "fm.tune.params",
  sig = "fm.tune.params(search, config) -> params",
  text = [[The parameters of configuration config (0-based): they depend on the search's seed and config alone.]],
  example = SEARCH .. [[
local S = fm.tune.spec(search)
local p = fm.tune.params(S, 0)
print(p.batch == 32 or p.batch == 64, p.l2 >= 1e-5 and p.l2 <= 1e-2)   --> true true
]],
}

doc {
  name = "fm.tune.plan",
  sig = "fm.tune.plan(search) -> rungs",
  text = [[
The rungs of a search, {rung, first, count, epochs} each: one for random and grid; for halving,
rung 0 trains `trials` configurations min_epochs, each next rung the best 1/eta of the one before
eta times longer. Trial ids are fixed in advance, rung after rung.]],
  example = SEARCH .. [[
local r = fm.tune.plan(fm.tune.spec(search))[1]
print(r.rung, r.first, r.count, r.epochs)   --> 0 0 2 1
]],
}

doc {
  name = "fm.tune.data",
  sig = "fm.tune.data(description | file | search) -> training set, validation set",
  text = [[The data every trial trains and is scored on, to train something else on the same split.]],
  example = SEARCH .. [[
local fit, val = fm.tune.data(search)
print(#fit, #val)   --> 270 30
]],
  needs = "dataset",
}

doc {
  name = "fm.tune.trial",
  sig = "fm.tune.trial(search, id) -> record [, \"already\"] | nil, \"interrupted\"",
  text = [[
Runs trial id of the search alone, writing its record to the search's folder (what `fmnist-lua
tune SPEC --trial N` does on one host of many); a trial that had finished is returned with
"already". A trial of a later rung needs the rung before it finished.]],
  example = SEARCH .. [[
local S = fm.tune.spec(search)
local rec = fm.tune.trial(S, 1)
print(rec.trial, rec.status)   --> 1 ok
]],
  needs = "dataset",
}

doc {
  name = "fm.tune.collect",
  sig = "fm.tune.collect(search) -> records, summary",
  text = [[
Merges what the trials wrote in the search's folder (from any host): trials.jsonl rewritten,
the best model moved to best.fmn, the plots drawn. summary = {total, finished, missing, best,
files}. `fmnist-lua tune SPEC --collect DIR` runs it.]],
  example = SEARCH .. [[
fm.tune(search)
local records, summary = fm.tune.collect(fm.tune.spec(search))
print(#records, summary.total, summary.finished)   --> 2 2 2
]],
  needs = { "dataset", "gnuplot" },
}

doc {
  name = "fm.tune.progress",
  sig = "fm.tune.progress(search, record [, finished])",
  text = [[
Prints the line a search prints when a trial finishes (when the search is verbose): the trial,
its score or what went wrong, its parameters and seconds, with [finished/total] first.]],
  example = SEARCH .. [[
search.verbose = true
local S = fm.tune.spec(search)
fm.tune.progress(S, {trial = 0, status = "error", error = "out of memory", params = {l2 = 0.001, batch = 32}, seconds = 1.5}, 1)
]],
}
