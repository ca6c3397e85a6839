-- test_tune.lua: fm.tune and `fmnist-lua tune` — parameters that depend on (seed, trial) alone,
-- the checks of a search description, and a tiny search (4 trials on 1,000 images) run three
-- ways: in this process, in worker processes, and through GNU parallel with --trial and
-- --collect; all three must give bit-identical results. Then resuming, merging copied results,
-- successive halving across processes, a worker that dies, Ctrl-C, and the command's options.
local T = require "testlib"
local fm = require "fmnist"
local json = require "fmnist.json"
local tune = fm.tune
local P = fm.process

local host = os.getenv("FMNIST_HOST") or arg[-1]
local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function has(s, text) return tostring(s):find(text, 1, true) ~= nil end

-- Runs a shell command line; returns stdout, stderr, exit status.
local function sh(cmd)
  local errname = os.tmpname()
  local p = assert(io.popen(cmd .. " </dev/null 2>" .. quote(errname), "r"))
  local out = p:read("a")
  local _, _, status = p:close()
  local err = T.read(errname) or ""
  os.remove(errname)
  return out, err, status
end

-- `fmnist-lua tune` as a shell prefix. A host whose command dispatch does not find the command
-- runs it through tests/lua/tune_command.lua, which does what the dispatch does.
local TUNE, TUNE_ARGV
do
  local out = sh(quote(host) .. " tune --help")
  if has(out, "usage: fmnist-lua tune") then
    TUNE, TUNE_ARGV = quote(host) .. " tune", { host, "tune" }
    T.ok(true, "fmnist-lua tune runs the command")
  else
    TUNE, TUNE_ARGV = quote(host) .. " tests/lua/tune_command.lua", { host, "tests/lua/tune_command.lua" }
    T.skip("fmnist-lua tune runs the command", "this host does not dispatch commands (lua/host.c "
      .. "run_command); the command runs through tests/lua/tune_command.lua")
  end
end
local function tune_cmd(args) return sh(TUNE .. " " .. args) end

-- ---- parameters ----
do
  local lu = tune.loguniform(1e-4, 1e-2)
  T.eq(tostring(lu), "fm.tune.loguniform(0.0001, 0.01)", "a parameter shows how it was made")
  T.eq(tostring(tune.int(1, 8, { log = true })), "fm.tune.int(1, 8, {log = true})", "int with log")
  T.eq(tostring(tune.choice { 16, "a", { 1, 2 } }), 'fm.tune.choice{16, "a", [1,2]}', "choice")
  T.err("tune: a parameter cannot be changed", function() lu.lo = 1 end)
  T.err("loguniform: the low end must be above 0, got 0", tune.loguniform, 0, 1)
  T.err("uniform: the low end (1) must be below the high end (1)", tune.uniform, 1, 1)
  T.err("uniform: the high end must be a finite number, got inf", tune.uniform, 0, math.huge)
  T.err("uniform: the low end must be a finite number, got nil", tune.uniform)
  T.err("int: the low end must be an integer, got 1.5", tune.int, 1.5, 3)
  T.err("int: the low end (5) must not be above the high end (3)", tune.int, 5, 3)
  T.err("int: with log = true the low end must be 1 or more, got 0", tune.int, 0, 3, { log = true })
  T.err("int: unknown option 'lgo' (known: log)", tune.int, 1, 3, { lgo = true })
  T.err("choice: the list of values is empty", tune.choice, {})
  T.err("choice: value 2 (1) is there twice", tune.choice, { 1, 1 })
  T.err("choice: value 1 cannot be a parameter", tune.choice, { print })
  T.err("choice: the values must be a list 1..1; key x is not", tune.choice, { 1, x = 2 })
  T.err("choice: give a list of values", tune.choice, 3)
end

-- A description for checks that do not run anything.
local function spec(extra, drop)
  local s = { model = function() end, space = { lr = tune.loguniform(1e-4, 1e-2) }, trials = 3,
              epochs = 1, dir = "unused" }
  for k, v in pairs(extra or {}) do s[k] = v end
  if drop then s[drop] = nil end
  return s
end

-- ---- trial N's parameters depend on (seed, N) alone ----
do
  local space = { lr = tune.loguniform(1e-4, 1e-2), dropout = tune.uniform(0, 0.5),
                  units = tune.int(16, 512, { log = true }), layers = tune.int(1, 3),
                  act = tune.choice { "relu", "tanh", { 1, 2 } } }
  local A = tune.spec(spec { space = space, seed = 7 })
  local B = tune.spec(spec { space = space, seed = 7 })
  local space2 = {}
  for k, v in pairs(space) do space2[k] = v end
  space2.extra = tune.uniform(0, 1)
  local C = tune.spec(spec { space = space2, seed = 7 })
  local D = tune.spec(spec { space = space, seed = 8 })
  local same, independent, differ, inside = true, true, 0, true
  local seen_layers, seen_act = {}, {}
  for n = 0, 1999 do
    local a, b, c, d = tune.params(A, n), tune.params(B, n), tune.params(C, n), tune.params(D, n)
    if json.encode(a) ~= json.encode(b) then same = false end
    for k, v in pairs(a) do
      if json.encode(v) ~= json.encode(c[k]) then independent = false end
    end
    if json.encode(a) ~= json.encode(d) then differ = differ + 1 end
    inside = inside and a.lr >= 1e-4 and a.lr <= 1e-2 and a.dropout >= 0 and a.dropout <= 0.5
        and math.type(a.units) == "integer" and a.units >= 16 and a.units <= 512
        and math.type(a.layers) == "integer" and a.layers >= 1 and a.layers <= 3
        and a.lr == tonumber(string.format("%.6g", a.lr))
    seen_layers[a.layers] = true
    seen_act[json.encode(a.act)] = true
  end
  T.ok(same, "the same (seed, trial) gives the same parameters in two searches")
  T.ok(independent, "adding a parameter leaves the others' values alone")
  T.ok(differ == 2000, "another seed gives other parameters (" .. differ .. " of 2000 differ)")
  T.ok(inside, "values in their ranges, integers as integers, floats to 6 significant digits")
  T.ok(seen_layers[1] and seen_layers[2] and seen_layers[3], "int reaches both ends")
  T.ok(seen_act['"relu"'] and seen_act['"tanh"'] and seen_act["[1,2]"], "choice reaches every value")
  -- fixed values: a change in how parameters are drawn shows up here
  T.eq(tune.params(A, 0), { act = "tanh", dropout = 0.321283, layers = 1, lr = 0.00108039, units = 103 },
    "trial 0 of seed 7")

  local G = tune.spec(spec({ method = "grid",
    space = { a = tune.choice { 1, 2, 3 }, b = tune.int(0, 1), c = tune.choice { "x", "y" } } }, "trials"))
  T.eq(G.total, 12, "a grid has one trial per point")
  local points, all = {}, true
  for n = 0, 11 do
    local p = tune.params(G, n)
    local k = json.encode(p)
    if points[k] then all = false end
    points[k] = true
  end
  T.ok(all, "the grid's 12 trials are 12 different points")
  T.eq({ tune.params(G, 0), tune.params(G, 1), tune.params(G, 2) },
    { { a = 1, b = 0, c = "x" }, { a = 1, b = 0, c = "y" }, { a = 1, b = 1, c = "x" } },
    "grid order: the last name (sorted) changes fastest")
end

-- ---- halving: the plan ----
do
  local S = tune.spec(spec { method = "halving", trials = 9, epochs = 9 })
  T.eq(S.plan, { { rung = 0, first = 0, count = 9, epochs = 1 }, { rung = 1, first = 9, count = 3, epochs = 3 },
                 { rung = 2, first = 12, count = 1, epochs = 9 } }, "halving, eta 3: 9 x 1, 3 x 3, 1 x 9 epochs")
  S = tune.spec(spec { method = "halving", trials = 10, epochs = 5, eta = 2, min_epochs = 2 })
  T.eq(S.plan, { { rung = 0, first = 0, count = 10, epochs = 2 }, { rung = 1, first = 10, count = 5, epochs = 4 },
                 { rung = 2, first = 15, count = 2, epochs = 5 } }, "halving, eta 2, from 2 epochs, capped at 5")
end

-- ---- the description is checked ----
T.err("tune: unknown option 'epoch' (known: data, dir, epochs, eta, fit, images, method, metric, "
  .. "min_epochs, model, seed, space, trials, validation, verbose, workers)", tune.spec, spec { epoch = 3 })
T.err("'model' must be a function(params) returning a model, got nil", tune.spec, spec({}, "model"))
T.err("'space' is empty", tune.spec, spec { space = {} })
T.err("'space' must be a table of parameters", tune.spec, spec { space = 3 })
T.err("space.lr must be a parameter (fm.tune.uniform, loguniform, int or choice), got 0.1",
  tune.spec, spec { space = { lr = 0.1 } })
T.err("space.lr must be a parameter", tune.spec, spec { space = { lr = { kind = "uniform", lo = 0, hi = 1 } } })
T.err("space: parameter names must be names", tune.spec, spec { space = { ["a b"] = tune.uniform(0, 1) } })
T.err("'trials' must be from 1 to 1000000, got 0", tune.spec, spec { trials = 0 })
T.err("'trials' must be an integer, got 2.5", tune.spec, spec { trials = 2.5 })
T.err("'trials' must be an integer, got string", tune.spec, spec { trials = "4" })
T.err("'trials' is missing", tune.spec, spec({}, "trials"))
T.err("'epochs' is missing", tune.spec, spec({}, "epochs"))
T.err("'method' must be \"grid\", \"random\" or \"halving\", got bayes", tune.spec, spec { method = "bayes" })
T.err("space.lr is fm.tune.loguniform(0.0001, 0.01), which has no grid points", tune.spec, spec { method = "grid" })
T.err("'trials' is 5 but the grid has 2 points", tune.spec,
  spec { method = "grid", trials = 5, space = { a = tune.choice { 1, 2 } } })
T.err("'eta' applies to method = \"halving\" only", tune.spec, spec { eta = 2 })
T.err("'min_epochs' must be from 1 to 3, got 4", tune.spec, spec { method = "halving", epochs = 3, min_epochs = 4 })
T.err("fit option 'epochs' is set by the search", tune.spec, spec { fit = { epochs = 3 } })
T.err("'lr' is both a parameter and a fit option", tune.spec, spec { fit = { lr = 0.1 } })
T.err("'fit' must be a table of fit options or a function", tune.spec, spec { fit = 3 })
T.err("'dir' must name the folder for the results, got nil", tune.spec, spec({}, "dir"))
T.err("'metric' must be \"val_accuracy\" or \"val_loss\", got accuracy", tune.spec, spec { metric = "accuracy" })
T.err("'validation' must be a fraction between 0 and 1, got 1.5", tune.spec, spec { validation = 1.5 })
T.err("'workers' must be from 0 to 1024, got -1", tune.spec, spec { workers = -1 })
T.err("'verbose' must be a boolean, got number", tune.spec, spec { verbose = 1 })
T.err("'data' must be a function", tune.spec, spec { data = "train" })
T.err("must be a plain table (it has a metatable)", tune.spec, setmetatable(spec(), { __index = {} }))
T.err("the search description must be a table, got number", tune.spec, 3)
T.err("tune: table: unknown option 'tpo' (known: top)", tune.table, {}, { tpo = 1 })
T.err("tune: table: top must be a whole number of at least 0, got 1.5", tune.table, {}, { top = 1.5 })
T.err("unknown override 'seed' (known: dir, verbose, workers)", tune.run, spec(), { seed = 2 })

-- ---- the tiny search, three ways ----
local root = T.tmpdir()
local spec_file = root .. "/spec.lua"
-- batch goes to fit by its name; hidden = 0 makes fm.MLP raise, so one trial fails.
T.write(spec_file, [[
local fm = require "fmnist"
return {
  model = function(p) return fm.MLP{hidden = {p.hidden}, dropout = 0} end,
  space = {lr = fm.tune.loguniform(1e-3, 3e-2), hidden = fm.tune.choice{0, 16, 32},
           batch = fm.tune.choice{32, 64}},
  trials = 4, epochs = 2, images = 1000, seed = 3, dir = "unused",
}
]])

-- The parts of a record that must not depend on where or how the trial ran.
local function outcome(rec)
  return json.encode({ trial = rec.trial, config = rec.config, rung = rec.rung, epochs = rec.epochs,
                       params = rec.params, status = rec.status, score = rec.score, error = rec.error,
                       history = rec.history }, { nonfinite = "literal" })
end
local function outcomes(dir)
  local out = {}
  for _, rec in ipairs(tune.load(dir)) do out[rec.trial + 1] = outcome(rec) end
  return out
end

local d_here, d_workers, d_parallel = root .. "/here", root .. "/workers", root .. "/parallel"
local list = tune.run(spec_file, { dir = d_here, workers = 0, verbose = false })
T.eq(#list, 4, "in this process: 4 records")
do
  local statuses = {}
  for _, rec in ipairs(list) do statuses[rec.trial] = rec.status end
  T.eq(statuses, { [0] = "ok", [1] = "ok", [2] = "ok", [3] = "error" }, "three trials trained, one failed")
  local failed = list[4]
  T.eq(failed.trial, 3, "the failed trial ranks last")
  T.ok(has(failed.error, "MLP: hidden[1] must be an integer from 1 to 32768, got 0"), "its error is recorded")
  T.ok(list[1].score >= list[2].score and list[2].score >= list[3].score, "sorted best first")
  T.eq(#list[1].history, 2, "two epochs of history")
  T.eq(list[1].history[2].val_accuracy, list[1].score, "the score is the last epoch's val_accuracy")
  local all_have = true
  for _, rec in ipairs(list) do
    all_have = all_have and rec.host == P.hostname() and type(rec.seconds) == "number"
        and rec.finished:find("^%d%d%d%d%-%d%d%-%d%dT") and rec.search == list[1].search
  end
  T.ok(all_have, "records name the host, the time taken, when, and the search")
end

do
  local out, err, status = tune_cmd(quote(spec_file) .. " --dir " .. quote(d_workers) .. " --workers 2")
  T.eq(status, 0, "the command with 2 workers: status 0")
  T.ok(has(out, "2 worker processes") and has(out, "4 of 4 trials finished"), "it says what it did")
  T.ok(has(out, "trial 3  error: " .. spec_file .. ":3: MLP: hidden[1] must be an integer from 1 to 32768, got 0"),
    "a line per trial, with the error and where it came from")
  T.eq(err, "", "nothing on stderr")
end

local have_parallel = os.execute("command -v parallel >/dev/null 2>&1")
if have_parallel then
  local cmd = "parallel -j2 " .. TUNE .. " " .. quote(spec_file) .. " --trial {} --dir "
      .. quote(d_parallel) .. " --quiet ::: 0 1 2 3"
  local _, err, status = sh(cmd)
  T.eq(status, 0, "GNU parallel -j2 ran the 4 trials")
  T.eq(err, "", "parallel: nothing on stderr")
  T.eq(T.read(d_parallel .. "/trials.jsonl"), nil, "--trial writes trials/N.json only, not trials.jsonl")
  local _, err2, status2 = tune_cmd(quote(spec_file) .. " --collect " .. quote(d_parallel) .. " --quiet")
  T.eq(status2, 0, "--collect: status 0")
  T.eq(err2, "", "--collect: nothing on stderr")
else
  T.skip("GNU parallel -j2 ran the 4 trials", "GNU parallel is not installed (make deps)")
end

do
  local here, workers = outcomes(d_here), outcomes(d_workers)
  T.eq(#here, 4, "4 outcomes in this process")
  T.eq(workers, here, "worker processes give bit-identical results")
  if have_parallel then
    T.eq(outcomes(d_parallel), here, "GNU parallel with --trial and --collect gives bit-identical results")
  else
    T.skip("GNU parallel gives bit-identical results", "GNU parallel is not installed (make deps)")
  end
end

-- the files of a finished search
for _, d in ipairs { d_here, d_workers, have_parallel and d_parallel or nil } do
  local lines = {}
  for line in T.read(d .. "/trials.jsonl"):gmatch("[^\n]+") do lines[#lines + 1] = json.decode(line).trial end
  T.eq(lines, { 0, 1, 2, 3 }, d:match("[^/]+$") .. ": trials.jsonl has one line per trial, in order")
  local best = fm.load_model(d .. "/best.fmn")
  local first = tune.load(d)[1]
  T.eq(tonumber(best.info.tune_trial), first.trial, d:match("[^/]+$") .. ": best.fmn is the best trial's model")
  T.eq(json.decode(best.info.tune_params), first.params, "best.fmn holds its parameters")
  T.eq(P.list(d .. "/models"), {}, "the other trials' models are gone")
  local pngs = true
  for _, f in ipairs { "history.png", "param-lr.png", "param-hidden.png", "param-batch.png" } do
    pngs = pngs and (T.read(d .. "/" .. f) or ""):sub(1, 8) == "\137PNG\r\n\26\n"
  end
  T.ok(pngs, "the history and one plot per parameter are PNG files")
end
do
  local best = fm.load_model(d_here .. "/best.fmn")
  local first = tune.load(d_here)[1]
  -- the best model scores what its record says on the validation set the search held out
  local pool = fm.load("train")
  pool = pool:split(1000 / #pool, { seed = 3, stratify = true })
  local _, val = pool:split(0.9, { seed = 3, stratify = true })
  T.eq(best:evaluate(val, { threads = 1 }).accuracy, first.score, "best.fmn scores its recorded val_accuracy")
end

-- ---- resuming ----
do
  local before = T.read(d_here .. "/trials/0.json")
  local again = tune.run(spec_file, { dir = d_here, workers = 0, verbose = false })
  T.eq(#again, 4, "rerunning a finished search: the same 4 records")
  T.eq(T.read(d_here .. "/trials/0.json"), before, "and no trial ran again")
  os.remove(d_here .. "/trials/2.json")
  local lines = {}
  for line in T.read(d_here .. "/trials.jsonl"):gmatch("[^\n]+") do
    if json.decode(line).trial ~= 2 then lines[#lines + 1] = line end
  end
  T.write(d_here .. "/trials.jsonl", table.concat(lines, "\n") .. "\n")
  local out = tune_cmd(quote(spec_file) .. " --dir " .. quote(d_here) .. " --workers 0")
  T.ok(has(out, "resuming: 3 of 4 trials finished before") and has(out, "[4/4] trial 2"),
    "a missing trial runs again, alone")
  T.eq(outcomes(d_here), outcomes(d_workers), "and gives the same result")
end

-- the same folder for another search is refused
T.err("holds the results of a different search (it differs in seed)", tune.run,
  (function() local s = dofile(spec_file) s.seed = 4 s.dir = d_here return s end)())

-- ---- merging copied results ----
do
  local merged = root .. "/merged"
  P.mkdir(merged)
  P.mkdir(merged .. "/trials")
  -- trials 0 and 1 as files from one host, 2 and 3 as another host's trials.jsonl
  for _, id in ipairs { 0, 1 } do
    T.write(merged .. "/trials/" .. id .. ".json", T.read(d_workers .. "/trials/" .. id .. ".json"))
  end
  local other = {}
  for line in T.read(d_workers .. "/trials.jsonl"):gmatch("[^\n]+\n?") do
    if json.decode(line).trial >= 2 then other[#other + 1] = line end
  end
  T.write(merged .. "/host-b.jsonl", table.concat(other))
  local out, _, status = tune_cmd(quote(spec_file) .. " --collect " .. quote(merged))
  T.eq(status, 0, "--collect of copied files: status 0")
  T.ok(has(out, "4 of 4 trials finished"), "it finds all four")
  T.ok(has(out, "note: the model of the best trial"), "it says the best model was trained elsewhere")
  T.eq(outcomes(merged), outcomes(d_workers), "merged results are the same results")
  -- two different records of one trial
  local rec = json.decode(T.read(merged .. "/trials/0.json"))
  rec.params.lr = 0.5
  T.write(merged .. "/conflict.jsonl", json.encode(rec) .. "\n")
  local _, err, status2 = tune_cmd(quote(spec_file) .. " --collect " .. quote(merged))
  T.eq(status2, 1, "conflicting records: status 1")
  T.ok(has(err, "trial 0 has two different records: " .. merged .. "/trials/0.json and "
    .. merged .. "/conflict.jsonl:1"), "the error names both")
  os.remove(merged .. "/conflict.jsonl")
  T.write(merged .. "/broken.jsonl", '{"trial": 1,\n')
  local _, err3 = tune_cmd(quote(spec_file) .. " --collect " .. quote(merged))
  T.ok(has(err3, merged .. "/broken.jsonl:1: not a trial record"), "a broken line is named by file and line")
  os.remove(merged .. "/broken.jsonl")
  T.write(merged .. "/partial.jsonl", T.read(merged .. "/trials/1.json"):sub(1, -2) .. "\n" .. '{"tri')
  local _, _, status4 = tune_cmd(quote(spec_file) .. " --collect " .. quote(merged) .. " --quiet")
  T.eq(status4, 0, "a last line without its newline (still being appended) is left out")
end

-- ---- successive halving, rung by rung, one process per trial ----
do
  local hspec = root .. "/halving.lua"
  T.write(hspec, [[
local fm = require "fmnist"
return {
  model = function(p) return fm.MLP{hidden = {p.hidden}, dropout = 0} end,
  space = {lr = fm.tune.loguniform(1e-3, 3e-2), hidden = fm.tune.choice{16, 32}},
  method = "halving", trials = 4, eta = 2, epochs = 2, images = 1000, seed = 5, dir = "unused",
}
]])
  local plan = tune_cmd(quote(hspec) .. " --plan")
  T.eq(plan, "halving search " .. tune.spec(hspec).fingerprint .. ": 6 trials\n"
    .. "rung 0: trials 0-3 (4), 1 epoch\nrung 1: trials 4-5 (2), 2 epochs\n", "--plan")
  T.eq(tune_cmd(quote(hspec) .. " --ids 1"), "4 5\n", "--ids RUNG")
  T.eq(tune_cmd(quote(hspec) .. " --ids"), "0 1 2 3 4 5\n", "--ids")
  T.eq(tune_cmd(quote(hspec) .. " --range 0"), "0-3\n", "--range RUNG")
  local hp = root .. "/halving-cmd"
  local _, err, status = tune_cmd(quote(hspec) .. " --trial 4 --dir " .. quote(hp))
  T.eq(status, 1, "a rung-1 trial before rung 0 has finished: status 1")
  T.ok(has(err, "trial 4 is in rung 1, which starts when every trial of rung 0 has finished: 4 of 4 are missing (0, 1, 2, 3)"),
    "the error says what is missing")
  for id = 0, 5 do tune_cmd(quote(hspec) .. " --trial " .. id .. " --dir " .. quote(hp) .. " --quiet") end
  local out2 = tune_cmd(quote(hspec) .. " --trial 5 --dir " .. quote(hp))
  T.ok(has(out2, "trial 5 finished before (ok); nothing to do"), "a finished trial is not run again")
  tune_cmd(quote(hspec) .. " --collect " .. quote(hp) .. " --quiet")
  local hh = root .. "/halving-here"
  local hlist = tune.run(hspec, { dir = hh, workers = 0, verbose = false })
  T.eq(#hlist, 6, "halving in this process: 6 trials")
  T.eq(hlist[1].rung, 1, "the best trial is in the last rung")
  T.eq(outcomes(hp), outcomes(hh), "halving one trial per process gives the same promotions and results")
  local r0 = {}
  for _, rec in ipairs(hlist) do
    if rec.rung == 0 then r0[#r0 + 1] = rec end
  end
  local promoted = {}
  for _, rec in ipairs(hlist) do
    if rec.rung == 1 then promoted[rec.trial - 3] = rec.config end
  end
  T.eq(promoted, { r0[1].config, r0[2].config }, "rung 1 trains rung 0's two best configurations, best first")
end

-- ---- a worker that dies, a model function that is not one ----
do
  local cspec = root .. "/crash.lua"
  T.write(cspec, [[
local fm = require "fmnist"
return {
  model = function(p)
    if p.hidden == 16 then os.exit(3) end
    if p.hidden == 8 then return "not a model" end
    return fm.MLP{hidden = {p.hidden}, dropout = 0}
  end,
  space = {hidden = fm.tune.choice{8, 16, 32}},
  method = "grid", epochs = 1, images = 200, dir = "unused",
}
]])
  local d = root .. "/crash"
  local _, _, status = tune_cmd(quote(cspec) .. " --dir " .. quote(d) .. " --workers 2 --quiet")
  T.eq(status, 0, "a worker that dies does not stop the search")
  local by = {}
  for _, rec in ipairs(tune.load(d)) do by[rec.params.hidden] = rec end
  T.ok(by[16].status == "error" and by[16].error:find("^worker process %d+ ended with status 3 during the trial$"),
    "its trial is recorded with what happened")
  T.eq({ by[8].status, by[8].error }, { "error", "tune: the model function returned string, not a model "
    .. "(fm.MLP{...}, fm.CNN{...}, ...)" }, "a model function that returns no model")
  T.eq(by[32].status, "ok", "the other trial trained")
end

-- ---- a trial that diverges ----
do
  local r = tune.run({ model = function() return fm.MLP { hidden = { 32 }, dropout = 0 } end,
                       space = { lr = tune.choice { 1e-3, 1e30 } }, method = "grid", epochs = 2, images = 300,
                       fit = { optimizer = "sgd" }, dir = root .. "/diverge", workers = 0, verbose = false })
  T.eq({ r[1].status, r[2].status }, { "ok", "diverged" }, "a diverging trial is recorded as diverged, last")
  T.ok(has(r[2].error, "fit: training diverged at epoch 1"), "with fit's message")
  T.eq({ r[2].score, #r[2].history }, { nil, 0 }, "and no score")
end

-- ---- Ctrl-C: the search stops, finished trials stay, a rerun goes on ----
do
  local ispec = root .. "/interrupt.lua"
  local flag = root .. "/go-on"
  -- trial 2 waits for a file that is not there until the search has been interrupted
  T.write(ispec, string.format([[
local fm = require "fmnist"
return {
  model = function(p)
    if p.hidden == 24 then
      while not io.open(%q) do fm.process.sleep(0.01) end
    end
    return fm.MLP{hidden = {p.hidden}, dropout = 0}
  end,
  space = {hidden = fm.tune.choice{8, 16, 24, 32}},
  method = "grid", epochs = 1, images = 200, dir = "unused",
}
]], flag))
  for _, workers in ipairs { 2, 0 } do
    local d = root .. "/interrupt" .. workers
    local argv = { table.unpack(TUNE_ARGV) }
    for _, a in ipairs { ispec, "--dir", d, "--workers", tostring(workers), "--quiet" } do argv[#argv + 1] = a end
    local p = P.spawn(argv, { stderr = "null" })
    -- wait (without a time limit that could fail a slow machine: the trials are tiny) until the
    -- trials that can finish have (in this process, trials run in order and stop at trial 2)
    local expect = workers == 0 and { 8, 16 } or { 8, 16, 32 }
    while not p:wait(true) do
      local ok, names = pcall(P.list, d .. "/trials")
      local n = 0
      for _, name in ipairs(ok and names or {}) do
        if name:find("^%d+%.json$") then n = n + 1 end
      end
      if n >= #expect then break end
      P.sleep(0.02)
    end
    T.eq(p:kill("INT"), true, workers .. " workers: Ctrl-C sent")
    local how, code = p:wait()
    T.eq({ how, code }, { "exited", 130 }, workers .. " workers: status 130")
    local kept = {}
    for _, rec in ipairs(tune.load(d)) do kept[#kept + 1] = rec.params.hidden end
    table.sort(kept)
    T.eq(kept, expect, workers .. " workers: the finished trials are kept, the interrupted one is not")
    local lines = 0
    for _ in T.read(d .. "/trials.jsonl"):gmatch("[^\n]+") do lines = lines + 1 end
    T.eq(lines, #expect, workers .. " workers: trials.jsonl has them")
    T.write(flag, "")
    local out, _, status = tune_cmd(quote(ispec) .. " --dir " .. quote(d) .. " --workers " .. workers)
    T.ok(status == 0 and has(out, ("resuming: %d of 4 trials finished before"):format(#expect))
      and has(out, "4 of 4 trials finished"),
      workers .. " workers: the rerun runs the interrupted trial")
    os.remove(flag)
  end
  local leftover = sh("ps -eo args | grep -c '[t]une._worker'")
  T.eq(leftover, "0\n", "no worker process is left")
end

-- ---- what cannot go to a worker ----
do
  local ds = fm.load("train"):subset(1, 100)
  T.err("spec.data's upvalue 'ds' is a fmnist.Dataset, which cannot be sent to a worker process",
    tune.run, { model = function() end, space = { a = tune.uniform(0, 1) }, trials = 1, epochs = 1,
                data = function() return ds end, dir = root .. "/noship", workers = 1, verbose = false })
  -- in this process it is fine, and data() may return both sets
  local a, b = ds:split(0.8, { seed = 1 })
  local r = tune.run({ model = function(p) return fm.MLP { hidden = { p.h }, dropout = 0 } end,
                       space = { h = tune.choice { 8 } }, method = "grid", epochs = 1,
                       data = function() return a, b end, dir = root .. "/local-data", workers = 0, verbose = false })
  T.eq(r[1].status, "ok", "data() returning the training and validation sets, in this process")
  T.err("data() returned a validation set, so 'validation' and 'images' do not apply", tune.run,
    { model = function() end, space = { h = tune.choice { 8 } }, method = "grid", epochs = 1, validation = 0.2,
      data = function() return a, b end, dir = root .. "/local-data2", workers = 0, verbose = false })
  T.err("data() must return the training set (a fmnist.Dataset)", tune.run,
    { model = function() end, space = { h = tune.choice { 8 } }, method = "grid", epochs = 1,
      data = function() return 5 end, dir = root .. "/local-data3", workers = 0, verbose = false })
end

-- ---- the notebook, quick ----
do
  local nbdir = root .. "/notebook"
  local out, err, status = sh(quote(host) .. " notebooks/tune.lua " .. quote(nbdir) .. " --quick --workers 2")
  T.eq(status, 0, "notebooks/tune.lua --quick: status 0")
  T.eq(err, "", "notebooks/tune.lua --quick: nothing on stderr")
  for _, name in ipairs { "MLP", "CNN" } do
    T.ok(out:find(name .. ": the best of %d+ trials %(trial %d+, %d+ epochs?%) against the defaults"),
      name .. ": the best trial against the defaults")
    T.ok(out:find(name .. "%s+default 0%.%d+%s+tuned 0%.%d+"), name .. ": both test accuracies")
  end
  T.ok(out:find("validation accuracy%s+0%.%d+%s+0%.%d+\ntest accuracy%s+0%.%d+%s+0%.%d+"),
    "the table ends with validation and test accuracy")
  local figures, pngs = 0, true
  for path in out:gmatch("\n  [^\n]-%s(" .. nbdir:gsub("%p", "%%%0") .. "/[^\n]+%.png)") do
    figures = figures + 1
    pngs = pngs and (T.read(path) or ""):sub(1, 8) == "\137PNG\r\n\26\n"
  end
  T.ok(figures >= 5 and pngs, "the figures it lists are PNG files (" .. figures .. ")")
  T.ok(T.read(nbdir .. "/mlp-quick/best.fmn") and T.read(nbdir .. "/mlp-default-quick/best.fmn"),
    "the tuned and the default MLP are saved")
end

-- ---- the command's own errors ----
do
  local _, err, status = tune_cmd(quote(spec_file) .. " --trails 3")
  T.eq(status, 1, "an unknown option: status 1")
  T.ok(has(err, "unknown option '--trails' (known: --collect, --dir, --help, --ids, --plan, --quiet, --range, --trial, --workers)"),
    "it lists the known options")
  _, err = tune_cmd(quote(spec_file) .. " --trial x --dir " .. quote(root .. "/x"))
  T.ok(has(err, "option '--trial' needs a whole number, got 'x'"), "--trial x")
  _, err = tune_cmd(quote(spec_file) .. " --trial 9 --dir " .. quote(root .. "/x"))
  T.ok(has(err, "trial 9 is not in this search (its trials are 0 to 3)"), "--trial out of range")
  _, err = tune_cmd(quote(spec_file) .. " --range 2")
  T.ok(has(err, "the search has rungs 0 to 0, not 2"), "--range of a rung that is not there")
  _, err = tune_cmd(quote(root .. "/none.lua"))
  T.ok(has(err, "fmnist-lua tune: cannot load the search file: cannot open") and has(err, "none.lua"),
    "a missing search file")
  _, err = tune_cmd(quote(spec_file) .. " --collect " .. quote(root) .. " --dir x")
  T.ok(has(err, "--collect names the folder already"), "--collect with --dir")
  local out = tune_cmd("--help")
  T.ok(has(out, "--trial N") and has(out, "--collect DIR"), "--help")
end

T.done()
