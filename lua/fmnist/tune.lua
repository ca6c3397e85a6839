-- fmnist.tune (fm.tune): hyperparameter search — grid, random and successive halving — with
-- trials in parallel worker processes, results in files that many hosts can share, resuming,
-- the best model kept and plots of the search.
--
--   local fm = require "fmnist"
--   local results = fm.tune{
--     model = function(p) return fm.MLP{hidden = {p.hidden}, dropout = p.dropout} end,
--     space = {lr = fm.tune.loguniform(1e-4, 1e-2), hidden = fm.tune.choice{128, 256, 512},
--              dropout = fm.tune.uniform(0, 0.5), batch = fm.tune.choice{32, 64, 128}},
--     method = "random", trials = 20, epochs = 5, seed = 1, dir = "out/tune-mlp",
--   }
--   print(results[1].score, results[1].params.lr)       -- sorted, best first
--   local best = fm.load_model("out/tune-mlp/best.fmn")
--
--   fm.tune(description | "search.lua" [, {dir =, workers =, verbose =}]) -> records, best first
--   fm.tune.load(dir) -> the records in dir, best first     fm.tune.table(records [, {top =}])
--   fm.tune.spec(description | file [, overrides]) -> the checked search (plan, total, fingerprint)
--   fm.tune.params(search, n) -> configuration n's parameters
--   fm.tune.data(description | search) -> the training and validation sets the trials use
--
-- The search description (a table, or the name of a Lua file returning one):
--   model       function(params, info) -> a model (fm.MLP{...}); info = {trial, config, seed}.
--               fm.seed is set to the trial's seed before the call.
--   space       {name = parameter, ...}: fm.tune.uniform(lo, hi), fm.tune.loguniform(lo, hi),
--               fm.tune.int(lo, hi [, {log = true}]), fm.tune.choice{v1, v2, ...}
--   method      "random" (default), "grid" (every combination of choice and int parameters) or
--               "halving" (successive halving: `trials` random configurations train min_epochs,
--               the best 1/eta go on with eta times more epochs, ... up to `epochs`)
--   trials      configurations to try (random, halving; a grid has as many as it has points)
--   epochs      epochs each trial trains (halving: the most any trial trains)
--   eta, min_epochs   halving only: 3 and 1 by default
--   metric      "val_accuracy" (default, higher is better) or "val_loss" (lower is better): the
--               value of the last epoch (of the restored epoch with patience) is the trial's score
--   fit         a table of fit options shared by all trials (batch =, optimizer =, ...), or
--               function(params) -> such a table. With a table, parameters named like fit
--               options (lr, batch, optimizer, momentum, weight_decay, ...) go to fit as well.
--               epochs, seed, threads, validation, verbose and on_epoch are the search's own.
--   data        function() -> training set [, validation set] (fmnist.Dataset). Default: the 60,000
--               training images. Without a validation set, `validation` (default 0.1) of the
--               training data is held out, stratified, with the search's seed; `images = N` first
--               takes a stratified sample of N images. The test set is never loaded here.
--   seed        the search's seed (default 1): trial N's parameters depend on (seed, N) alone;
--               every trial trains with the same training seed (one derived from seed), so that
--               differences between trials come from their parameters.
--   workers     worker processes (default: one per core this process may use); 0 runs the
--               trials in this process. Every trial trains on one thread (fit's threads = 1),
--               so that results are the same wherever and however trials run. A description
--               from a file is loaded again by each worker; a table's functions are sent as
--               bytecode with their upvalues (modules go by name), but not the globals of this
--               session, and a dataset or model in an upvalue is an error (make it inside the
--               function, or use workers = 0).
--   dir         where results go (required)
--   verbose     print a line per finished trial and a table at the end (default true)
--
-- Files in dir:
--   search.json        the description (without functions) and its fingerprint; a dir holds
--                      one search, and resuming with a different description is an error (the
--                      functions are not compared: after changing model or data, use a new dir)
--   trials/N.json      the record of trial N: written by whoever ran it through a temporary file
--                      and a rename (one operation on the server over NFS), so that readers see
--                      all of it or nothing, and hosts sharing the folder never write one file
--   trials.jsonl       one line per finished trial, sorted by trial: appended (one write() with
--                      O_APPEND) by the local run as trials finish, and rewritten whole at the end
--                      and by --collect. Only one process writes it at a time: O_APPEND is not
--                      atomic between NFS clients.
--   models/N.fmn       the model of a trial that was the best when it finished
--   best.fmn           the best model, moved there from models/ at the end (the rest removed)
--   history.png, param-NAME.png   the score of every trial with the best so far; each
--                      parameter against the score
-- A record: {trial, config, rung, epochs, params, status = "ok"|"error"|"diverged"|"skipped",
-- score, metric, history = {{epoch, loss, accuracy, val_loss, val_accuracy, lr}, ...}, error,
-- seconds, host, pid, finished, search, version}.
--
-- Rerunning a search resumes it: finished trials (any status) are skipped. Ctrl-C stops the
-- search; the trials that finished are kept. One trial is one command,
-- `fmnist-lua tune SPEC.lua --trial N --dir DIR` (see cmd_tune.lua), so GNU parallel or a
-- Slurm job array can run a search over many hosts; --collect merges what they wrote.
--
-- Successive halving decides the configurations of a rung from the results of the rung before,
-- which must all be there; trial ids are fixed in advance (rung 0 is 0..trials-1, rung 1 follows,
-- ...), so a rung's trials can be run anywhere once the rung before has finished. A promoted
-- configuration trains again from the start for its rung's epochs (fit's optimizer state is not
-- in a model file, and the learning-rate schedule depends on the epochs), which keeps each
-- result a function of (seed, configuration, epochs) alone, at the cost of about 1/(eta-1)
-- more epochs than continuing would take.
local fm = require "fmnist"
local json = require "fmnist.json"
local P = fm.process

local M = {}

local VERSION = 1
local WORKER_CODE = 'require("fmnist").tune._worker()'

local function fail(fmt, ...)
  error("tune: " .. string.format(fmt, ...), 0)
end

local function sorted_keys(t)
  local keys = {}
  for k in next, t do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in next, v do out[k] = copy(x) end
  return out
end

local function is_interruption(msg)
  return tostring(msg):find("interrupted", 1, true) ~= nil
end

-- Runs f; an error that is a Ctrl-C goes on up, any other comes back as nil, message.
local function protect(f, ...)
  local ok, a, b = pcall(f, ...)
  if ok then return a, b end
  if is_interruption(a) then error(a, 0) end
  return nil, a
end

-- ---- hashing and the random numbers of a trial ----

-- splitmix64's finaliser: Lua integers wrap around, as the algorithm needs.
local function mix64(z)
  z = (z ~ (z >> 30)) * -4658895280553007687 -- 0xbf58476d1ce4e5b9
  z = (z ~ (z >> 27)) * -7723592293110705685 -- 0x94d049bb133111eb
  return z ~ (z >> 31)
end

-- FNV-1a, 64 bits.
local function fnv1a(s)
  local h = -3750763034362895579 -- 0xcbf29ce484222325
  for i = 1, #s do h = (h ~ s:byte(i)) * 1099511628211 end
  return h
end

-- A number in [0, 1) that depends on (seed, index, name) alone: the parameter `name` of
-- configuration `index` does not change when other parameters are added or removed.
local function unit(seed, index, name)
  local z = mix64(mix64(seed ~ 0x5851f42d4c957f2d) ~ index)
  z = mix64(z ~ fnv1a(name))
  return (z >> 11) * (1.0 / 9007199254740992.0)
end

-- The seed every trial of a search trains with.
local function train_seed(seed)
  return mix64(seed ~ fnv1a("train")) & 0x7fffffffffffffff
end

-- ---- parameters ----

local PARAM = setmetatable({}, { __mode = "k" }) -- parameter object -> its description
local PREPARED = setmetatable({}, { __mode = "k" }) -- searches made by prepare

local function describe(d)
  local out = { kind = d.kind }
  if d.kind == "choice" then
    out.values = copy(d.values)
  else
    out.lo, out.hi = d.lo, d.hi
    if d.log then out.log = true end
  end
  return out
end

local function param_string(d)
  if d.kind == "choice" then
    local parts = {}
    for i, v in ipairs(d.values) do parts[i] = json.encode(v) end
    return "fm.tune.choice{" .. table.concat(parts, ", ") .. "}"
  end
  return string.format("fm.tune.%s(%s, %s%s)", d.kind == "int" and "int" or d.kind, d.lo, d.hi,
    d.log and d.kind == "int" and ", {log = true}" or "")
end

local function new_param(d)
  local obj = setmetatable({}, {
    __index = function(_, k) return copy(d[k]) end,
    __newindex = function() error("tune: a parameter cannot be changed", 2) end,
    __tostring = function() return param_string(d) end,
    __metatable = "fmnist.tune parameter",
  })
  PARAM[obj] = d
  return obj
end

local function finite(x)
  return type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge
end

local function check_bounds(fname, lo, hi)
  if not finite(lo) then fail("%s: the low end must be a finite number, got %s", fname, tostring(lo)) end
  if not finite(hi) then fail("%s: the high end must be a finite number, got %s", fname, tostring(hi)) end
  if not (lo < hi) then fail("%s: the low end (%s) must be below the high end (%s)", fname, lo, hi) end
end

-- fm.tune.uniform(lo, hi): a float drawn evenly from [lo, hi].
function M.uniform(lo, hi)
  check_bounds("uniform", lo, hi)
  return new_param { kind = "uniform", lo = lo + 0.0, hi = hi + 0.0 }
end

-- fm.tune.loguniform(lo, hi): a float whose logarithm is drawn evenly (learning rates, l2).
function M.loguniform(lo, hi)
  check_bounds("loguniform", lo, hi)
  if lo <= 0 then fail("loguniform: the low end must be above 0, got %s", lo) end
  return new_param { kind = "loguniform", lo = lo + 0.0, hi = hi + 0.0 }
end

-- fm.tune.int(lo, hi [, {log = true}]): an integer from lo to hi, both included.
function M.int(lo, hi, opts)
  local ilo, ihi = math.tointeger(lo), math.tointeger(hi)
  if not ilo then fail("int: the low end must be an integer, got %s", tostring(lo)) end
  if not ihi then fail("int: the high end must be an integer, got %s", tostring(hi)) end
  if ilo > ihi then fail("int: the low end (%d) must not be above the high end (%d)", ilo, ihi) end
  local log = false
  if opts ~= nil then
    if type(opts) ~= "table" then fail("int: options must be a table, got %s", type(opts)) end
    for k in next, opts do
      if k ~= "log" then fail("int: unknown option '%s' (known: log)", tostring(k)) end
    end
    log = rawget(opts, "log")
    if type(log) ~= "boolean" then fail("int: option 'log' must be a boolean, got %s", type(log)) end
    if log and ilo < 1 then fail("int: with log = true the low end must be 1 or more, got %d", ilo) end
  end
  return new_param { kind = "int", lo = ilo, hi = ihi, log = log or nil }
end

-- fm.tune.choice{v1, v2, ...}: one of the values (numbers, strings, booleans or plain tables of
-- them, such as layer sizes {256, 128}), each as likely.
function M.choice(values)
  if type(values) ~= "table" or getmetatable(values) ~= nil then
    fail("choice: give a list of values, fm.tune.choice{a, b, c}, got %s", type(values))
  end
  local n = rawlen(values)
  if n == 0 then fail("choice: the list of values is empty") end
  for k in next, values do
    if math.type(k) ~= "integer" or k < 1 or k > n then
      fail("choice: the values must be a list 1..%d; key %s is not", n, tostring(k))
    end
  end
  local out, seen = {}, {}
  for i = 1, n do
    local v = rawget(values, i)
    local ok, text = pcall(json.encode, v)
    if not ok or type(v) == "nil" or rawequal(v, json.null) then
      fail("choice: value %d cannot be a parameter (%s)", i, ok and "null" or tostring(text))
    end
    if seen[text] then fail("choice: value %d (%s) is there twice", i, text) end
    seen[text] = true
    out[i] = json.decode(text) -- a copy that later changes to the caller's table do not reach
  end
  return new_param { kind = "choice", values = out }
end

local function round6(x) return tonumber(string.format("%.6g", x)) end

local function sample(d, u)
  if d.kind == "uniform" then
    return math.min(d.hi, math.max(d.lo, round6(d.lo + u * (d.hi - d.lo))))
  elseif d.kind == "loguniform" then
    local v = math.exp(math.log(d.lo) + u * (math.log(d.hi) - math.log(d.lo)))
    return math.min(d.hi, math.max(d.lo, round6(v)))
  elseif d.kind == "int" then
    local v
    if d.log then
      v = math.floor(math.exp(math.log(d.lo) + u * (math.log(d.hi + 1) - math.log(d.lo))))
    else
      v = d.lo + math.floor(u * (d.hi - d.lo + 1))
    end
    return math.tointeger(math.min(d.hi, math.max(d.lo, v)))
  end
  return copy(d.values[math.floor(u * #d.values) + 1])
end

-- The values a grid takes for a parameter.
local GRID_MAX = 100000

local function grid_values(name, d)
  if d.kind == "choice" then return d.values end
  if d.kind == "int" and not d.log then
    if d.hi - d.lo + 1 > GRID_MAX then fail("space.%s: %d integers are too many for a grid", name, d.hi - d.lo + 1) end
    local out = {}
    for v = d.lo, d.hi do out[#out + 1] = v end
    return out
  end
  fail("space.%s is %s, which has no grid points: a grid takes fm.tune.choice{...} and "
    .. "fm.tune.int(lo, hi) parameters (or use method = \"random\")", name, param_string(d))
end

-- ---- the search description ----

local KNOWN = { "data", "dir", "epochs", "eta", "fit", "images", "method", "metric", "min_epochs",
                "model", "seed", "space", "trials", "validation", "verbose", "workers" }
local KNOWN_SET = {}
for _, k in ipairs(KNOWN) do KNOWN_SET[k] = true end

local METHODS = { grid = true, random = true, halving = true }
local METRICS = { val_accuracy = "max", val_loss = "min" }

-- fit's options that a parameter of the same name is given to, and those the search sets.
local FIT_PARAMS = { batch = true, lr = true, optimizer = true, momentum = true, nesterov = true,
                     weight_decay = true, schedule = true, min_lr = true, step_epochs = true,
                     gamma = true, patience = true, restore_best = true, shuffle = true }
local FIT_RESERVED = { epochs = true, seed = true, threads = true, validation = true,
                       verbose = true, on_epoch = true }

local function check_int(key, v, lo, hi)
  local i = math.tointeger(v)
  if type(v) ~= "number" or not i then
    fail("'%s' must be an integer, got %s", key, type(v) == "number" and tostring(v) or type(v))
  end
  if i < lo or i > hi then fail("'%s' must be from %d to %d, got %d", key, lo, hi, i) end
  return i
end

-- Builds the rungs: {rung, first, count, epochs}.
local function make_plan(S)
  if S.method ~= "halving" then
    return { { rung = 0, first = 0, count = S.trials, epochs = S.epochs } }
  end
  local plan, first, count, epochs = {}, 0, S.trials, math.min(S.min_epochs, S.epochs)
  while true do
    plan[#plan + 1] = { rung = #plan, first = first, count = count, epochs = epochs }
    if epochs >= S.epochs then break end
    first = first + count
    count = math.max(1, count // S.eta)
    epochs = math.min(S.epochs, epochs * S.eta)
  end
  return plan
end

-- Checks a description and returns the search: the description's values with defaults, the
-- parameters' descriptions, the plan and the fingerprint. overrides (dir, workers, verbose) come
-- from the command line or the caller and win over the description's.
local function prepare(spec, overrides, file)
  if type(spec) ~= "table" then
    fail("the search description must be a table, got %s", type(spec))
  end
  if getmetatable(spec) ~= nil then fail("the search description must be a plain table (it has a metatable)") end
  for k in next, spec do
    if type(k) ~= "string" or not KNOWN_SET[k] then
      fail("unknown option '%s' (known: %s)", tostring(k), table.concat(KNOWN, ", "))
    end
  end
  local function get(k)
    local v = rawget(spec, k)
    if overrides and overrides[k] ~= nil then v = overrides[k] end
    return v
  end
  local S = { file = file }
  S.model = get("model")
  if type(S.model) ~= "function" then
    fail("'model' must be a function(params) returning a model, got %s", type(S.model))
  end
  S.data = get("data")
  if S.data ~= nil and type(S.data) ~= "function" then
    fail("'data' must be a function returning the training set [and the validation set], got %s", type(S.data))
  end
  -- the space
  local space = get("space")
  if type(space) ~= "table" or getmetatable(space) ~= nil then
    fail("'space' must be a table of parameters ({lr = fm.tune.loguniform(1e-4, 1e-2), ...}), got %s",
      type(space) == "table" and "a table with a metatable" or type(space))
  end
  S.space, S.names = {}, {}
  for name, p in next, space do
    if type(name) ~= "string" or not name:find("^[%a_][%w_]*$") then
      fail("space: parameter names must be names such as lr or hidden_size, not %s", tostring(name))
    end
    if not PARAM[p] then
      fail("space.%s must be a parameter (fm.tune.uniform, loguniform, int or choice), got %s", name,
        type(p) == "table" and "a table" or tostring(p))
    end
    S.space[name] = PARAM[p]
    S.names[#S.names + 1] = name
  end
  table.sort(S.names)
  if #S.names == 0 then fail("'space' is empty: give at least one parameter") end
  -- method, sizes
  S.method = get("method") or "random"
  if type(S.method) ~= "string" or not METHODS[S.method] then
    fail("'method' must be \"grid\", \"random\" or \"halving\", got %s", tostring(S.method))
  end
  local epochs = get("epochs")
  if epochs == nil then fail("'epochs' is missing (the epochs each trial trains; for halving, the most)") end
  S.epochs = check_int("epochs", epochs, 1, 100000)
  local trials = get("trials")
  if S.method == "grid" then
    S.grid = {}
    local size = 1
    for i, name in ipairs(S.names) do
      S.grid[i] = grid_values(name, S.space[name])
      size = size * #S.grid[i]
      if size > GRID_MAX then fail("the grid has more than %d points", GRID_MAX) end
    end
    if trials ~= nil and check_int("trials", trials, 1, GRID_MAX) ~= size then
      fail("'trials' is %s but the grid has %d points; leave trials out for a grid", tostring(trials), size)
    end
    S.trials = size
  else
    if trials == nil then fail("'trials' is missing (how many configurations to try)") end
    S.trials = check_int("trials", trials, 1, 1000000)
  end
  for _, k in ipairs { "eta", "min_epochs" } do
    if get(k) ~= nil and S.method ~= "halving" then
      fail("'%s' applies to method = \"halving\" only", k)
    end
  end
  S.eta = check_int("eta", get("eta") or 3, 2, 100)
  S.min_epochs = check_int("min_epochs", get("min_epochs") or 1, 1, S.epochs)
  -- the rest
  S.metric = get("metric") or "val_accuracy"
  if not METRICS[S.metric] then
    fail("'metric' must be \"val_accuracy\" or \"val_loss\", got %s", tostring(S.metric))
  end
  local seed = get("seed")
  S.seed = seed == nil and 1 or check_int("seed", seed, math.mininteger, math.maxinteger)
  S.train_seed = train_seed(S.seed)
  local workers = get("workers")
  S.workers = workers == nil and P.cpus() or check_int("workers", workers, 0, 1024)
  S.dir = get("dir")
  if type(S.dir) ~= "string" or S.dir == "" then
    fail("'dir' must name the folder for the results, got %s", type(S.dir) == "string" and '""' or type(S.dir))
  end
  S.validation = get("validation")
  if S.validation ~= nil and not (type(S.validation) == "number" and S.validation > 0 and S.validation < 1) then
    fail("'validation' must be a fraction between 0 and 1, got %s", tostring(S.validation))
  end
  S.images = get("images")
  if S.images ~= nil then S.images = check_int("images", S.images, 20, 100000000) end
  S.verbose = get("verbose")
  if S.verbose == nil then S.verbose = true end
  if type(S.verbose) ~= "boolean" then fail("'verbose' must be a boolean, got %s", type(S.verbose)) end
  local fit = get("fit")
  if fit ~= nil and type(fit) ~= "function" then
    if type(fit) ~= "table" or getmetatable(fit) ~= nil then
      fail("'fit' must be a table of fit options or a function(params) returning one, got %s", type(fit))
    end
    for k in next, fit do
      if FIT_RESERVED[k] then fail("fit option '%s' is set by the search", tostring(k)) end
      if S.space[k] and FIT_PARAMS[k] then
        fail("'%s' is both a parameter and a fit option; keep one", k)
      end
    end
  end
  S.fit = fit
  S.plan = make_plan(S)
  S.total = S.plan[#S.plan].first + S.plan[#S.plan].count
  -- what identifies the search: everything that changes a trial's parameters or results
  local space_desc = {}
  for _, name in ipairs(S.names) do space_desc[name] = describe(S.space[name]) end
  S.description = {
    version = VERSION, method = S.method, seed = S.seed, trials = S.trials, epochs = S.epochs,
    metric = S.metric, space = space_desc, validation = S.validation, images = S.images,
    data = S.data and "function" or "training set",
    eta = S.method == "halving" and S.eta or nil,
    min_epochs = S.method == "halving" and S.min_epochs or nil,
  }
  S.fingerprint = string.format("%016x", fnv1a(json.encode(S.description)))
  S.spec = spec
  S.overrides = overrides or {}
  PREPARED[S] = true
  return S
end

-- A description from a Lua file that returns one.
local function load_spec_file(path)
  if type(path) ~= "string" then fail("the search file name must be a string, got %s", type(path)) end
  local chunk, err = loadfile(path, "t")
  if not chunk then fail("cannot load the search file: %s", err) end
  local ok, spec = pcall(chunk)
  if not ok then
    if is_interruption(spec) then error(spec, 0) end
    fail("the search file %s failed: %s", path, tostring(spec))
  end
  if type(spec) ~= "table" then
    fail("the search file %s must return the search description (a table), not %s", path, type(spec))
  end
  return spec
end

-- ---- sending a description with functions to a worker process ----

-- Values a worker can find by name: the modules in package.loaded and their fields.
local function well_known()
  local known = {}
  for name, mod in next, package.loaded do
    if type(name) == "string" and type(mod) ~= "boolean" and known[mod] == nil then
      known[mod] = { name }
    end
  end
  for name, mod in next, package.loaded do
    if type(name) == "string" and type(mod) == "table" then
      for k, v in next, mod do
        local tv = type(v)
        if type(k) == "string" and (tv == "function" or tv == "table" or tv == "userdata")
            and known[v] == nil then
          known[v] = { name, k }
        end
      end
    end
  end
  return known
end

-- Lua source that rebuilds value in another process: functions as bytecode with their upvalues,
-- tables field by field, modules and their functions by name, parameters by their description.
-- What cannot travel (a dataset, a model, a file) is an error naming where it is.
local function ship(value, what)
  local known, ids, lines, count = well_known(), {}, {}, 0
  local ref
  local function node(v, code)
    count = count + 1
    ids[v] = count
    lines[#lines + 1] = string.format("n[%d] = %s", count, code)
    return count
  end
  function ref(v, path)
    local tv = type(v)
    if v == nil then return "nil" end
    if tv == "boolean" then return tostring(v) end
    if tv == "number" or tv == "string" then return string.format("%q", v) end
    if rawequal(v, _G) then return "G" end
    if ids[v] then return "n[" .. ids[v] .. "]" end
    if known[v] then
      return string.format("W(%q, %s)", known[v][1], known[v][2] and string.format("%q", known[v][2]) or "nil")
    end
    if tv == "table" and PARAM[v] then
      return "n[" .. node(v, string.format("D(%q)", json.encode(describe(PARAM[v])))) .. "]"
    end
    if tv == "table" then
      if getmetatable(v) ~= nil then
        fail("%s is a table with a metatable, which cannot be sent to a worker process: make it "
          .. "inside the function, or run the trials in this process (workers = 0)", path)
      end
      local id = node(v, "{}")
      for _, k in ipairs(sorted_keys(v)) do
        local kp = type(k) == "string" and (path .. "." .. k) or (path .. "[" .. tostring(k) .. "]")
        local line = string.format("n[%d][%s] = %s", id, ref(k, path), ref(v[k], kp))
        lines[#lines + 1] = line -- after ref, which may add the lines of what it refers to
      end
      return "n[" .. id .. "]"
    end
    if tv == "function" then
      local ok, code = pcall(string.dump, v)
      if not ok then
        fail("%s is a C function that is not in a loaded module, which cannot be sent to a worker "
          .. "process (run the trials in this process: workers = 0)", path)
      end
      local id = node(v, string.format("F(%q)", code))
      for i = 1, 255 do
        local name, up = debug.getupvalue(v, i)
        if not name then break end
        if up ~= nil then
          local line = string.format("U(n[%d], %d, %s)", id, i,
            ref(up, string.format("%s's upvalue '%s'", path, name)))
          lines[#lines + 1] = line
        end
      end
      return "n[" .. id .. "]"
    end
    local mt = getmetatable(v)
    local kind = type(mt) == "table" and rawget(mt, "__name") or tv
    fail("%s is a %s, which cannot be sent to a worker process: make it inside the function "
      .. "(data = function() return fm.load(\"train\") end), or run the trials in this process "
      .. "(workers = 0)", path, tostring(kind))
  end
  local root = ref(value, what)
  return "local n, F, U, W, D, G = {}, ...\n" .. table.concat(lines, "\n") .. "\nreturn " .. root .. "\n"
end

local PARAM_MAKERS = { uniform = M.uniform, loguniform = M.loguniform }

-- Rebuilds what ship made (in the worker; the text came from the parent through the channel).
local function unship(text)
  local chunk = assert(load(text, "=(search description)", "t", {}))
  local function F(code) return assert(load(code, "=(search function)", "b")) end
  local function U(f, i, v) debug.setupvalue(f, i, v) end
  local function W(mod, key)
    local m = package.loaded[mod]
    if m == nil then m = require(mod) end
    if key == nil then return m end
    return m[key]
  end
  local function D(text2)
    local d = json.decode(text2)
    if d.kind == "choice" then return M.choice(d.values) end
    if d.kind == "int" then return M.int(d.lo, d.hi, d.log and { log = true } or nil) end
    return PARAM_MAKERS[d.kind](d.lo, d.hi)
  end
  return chunk(F, U, W, D, _G)
end

-- ---- trials: who runs what ----

local function params_of(S, config)
  local params = {}
  if S.method == "grid" then
    local rest = config
    for i = #S.names, 1, -1 do
      local values = S.grid[i]
      params[S.names[i]] = copy(values[rest % #values + 1])
      rest = rest // #values
    end
  else
    for _, name in ipairs(S.names) do
      params[name] = sample(S.space[name], unit(S.seed, config, name))
    end
  end
  return params
end

local function rung_of(S, id)
  for _, r in ipairs(S.plan) do
    if id >= r.first and id < r.first + r.count then return r end
  end
  return nil
end

local function higher_is_better(metric) return METRICS[metric] == "max" end

-- Whether record a ranks before record b: finished trials first, then the higher rung, then the
-- better score, then the lower trial id (so that the order is total and the same everywhere).
local function ranks_before(a, b)
  local aok, bok = a.status == "ok", b.status == "ok"
  if aok ~= bok then return aok end
  if aok then
    if a.rung ~= b.rung then return a.rung > b.rung end
    if a.score ~= b.score then
      if higher_is_better(a.metric) then return a.score > b.score end
      return a.score < b.score
    end
  end
  return a.trial < b.trial
end

local function id_list(ids)
  local shown = {}
  for i = 1, math.min(#ids, 10) do shown[i] = tostring(ids[i]) end
  return table.concat(shown, ", ") .. (#ids > 10 and ", ..." or "")
end

-- What trial id runs: {trial, config, rung, epochs, params[, parent][, skip]}; or nil and why
-- when it waits for the rung before (halving).
local function assign(S, id, done)
  local r = rung_of(S, id)
  if not r then fail("trial %d is not in this search (its trials are 0 to %d)", id, S.total - 1) end
  local a = { trial = id, rung = r.rung, epochs = r.epochs }
  if r.rung == 0 then
    a.config = id
    a.params = params_of(S, id)
    return a
  end
  local prev = S.plan[r.rung]
  local missing, ok = {}, {}
  for j = prev.first, prev.first + prev.count - 1 do
    local rec = done[j]
    if not rec then
      missing[#missing + 1] = j
    elseif rec.status == "ok" then
      ok[#ok + 1] = rec
    end
  end
  if #missing > 0 then
    return nil, string.format("trial %d is in rung %d, which starts when every trial of rung %d "
      .. "has finished: %d of %d are missing (%s)", id, r.rung, prev.rung, #missing, prev.count,
      id_list(missing))
  end
  table.sort(ok, ranks_before)
  local k = id - r.first + 1
  if k > #ok then
    a.config = -1
    a.params = {}
    a.skip = string.format("no configuration left to promote: %d of rung %d's %d trials finished "
      .. "without an error", #ok, prev.rung, prev.count)
    return a
  end
  a.config, a.parent = ok[k].config, ok[k].trial
  a.params = params_of(S, a.config)
  return a
end

-- ---- files ----

local function join(dir, name) return (dir:gsub("/+$", "")) .. "/" .. name end

local function mkdir_p(path)
  local prefix = path:sub(1, 1) == "/" and "/" or ""
  local sofar = prefix
  for part in path:gmatch("[^/]+") do
    sofar = sofar == prefix and (prefix .. part) or (sofar .. "/" .. part)
    P.mkdir(sofar)
  end
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- Creates dir and its subfolders and checks (or writes) search.json.
local function setup_dir(S)
  mkdir_p(S.dir)
  P.mkdir(join(S.dir, "trials"))
  P.mkdir(join(S.dir, "models"))
  local path = join(S.dir, "search.json")
  local text = json.encode({ fingerprint = S.fingerprint, search = S.description }) .. "\n"
  local old = read_file(path)
  if old == nil then
    P.write_file(path, text)
  elseif old ~= text then
    local ok, prev = pcall(json.decode, old)
    local diff = {}
    if ok and type(prev) == "table" and type(prev.search) == "table" then
      for _, k in ipairs(sorted_keys(S.description)) do
        if json.encode(prev.search[k] or json.null) ~= json.encode(S.description[k]) then diff[#diff + 1] = k end
      end
      for k in next, prev.search do
        if S.description[k] == nil then diff[#diff + 1] = k end
      end
    end
    fail("%s holds the results of a different search (%s); use another dir, or remove it to start over",
      S.dir, #diff > 0 and ("it differs in " .. table.concat(diff, ", ")) or "its search.json differs")
  end
end

local RECORD_FIELDS = { trial = "integer", config = "integer", rung = "integer", epochs = "integer",
                        params = "table", status = "string", metric = "string", search = "string" }

local function check_record(rec, where)
  if type(rec) ~= "table" then fail("%s: not a trial record", where) end
  for k, want in pairs(RECORD_FIELDS) do
    local v = rec[k]
    local got = want == "integer" and math.type(v) or type(v)
    if got ~= want then fail("%s: not a trial record (its '%s' is %s)", where, k, tostring(v)) end
  end
  if rec.status == "ok" and not finite(rec.score) then
    fail("%s: a finished trial without a score", where)
  end
  if rec.params == json.null then rec.params = {} end
  return rec
end

-- What must be equal in two records of the same trial (timing and host may differ).
local function record_key(rec)
  return json.encode({ rec.search, rec.config, rec.rung, rec.epochs, rec.params }, { nonfinite = "null" })
end

-- Every record in dir: trials/N.json, then the lines of every *.jsonl file in dir (trials.jsonl
-- and files copied from other hosts). Two records of one trial must agree. Returns records by
-- trial id and their count. With S, records of another search are an error.
local function gather(dir, S)
  local by_id, sources, n = {}, {}, 0
  local function add(rec, where)
    check_record(rec, where)
    if S and rec.search ~= S.fingerprint then
      fail("%s: a trial of another search (fingerprint %s, this search's is %s)", where, rec.search, S.fingerprint)
    end
    local old = by_id[rec.trial]
    if old then
      if record_key(old) ~= record_key(rec) then
        fail("trial %d has two different records: %s and %s", rec.trial, sources[rec.trial], where)
      end
      return
    end
    by_id[rec.trial], sources[rec.trial] = rec, where
    n = n + 1
  end
  local tdir = join(dir, "trials")
  local names = protect(P.list, tdir)
  if names then
    table.sort(names)
    for _, name in ipairs(names) do
      local id = name:match("^(%d+)%.json$")
      if id then
        local path = join(tdir, name)
        local text = read_file(path)
        local ok, rec = pcall(json.decode, text or "")
        if not ok then fail("%s: not a trial record (%s)", path, rec) end
        add(rec, path)
        if rec.trial ~= tonumber(id) then fail("%s holds trial %s", path, tostring(rec.trial)) end
      end
    end
  end
  local files = protect(P.list, dir)
  if files then
    table.sort(files)
    for _, name in ipairs(files) do
      if name:find("%.jsonl$") then
        local path = join(dir, name)
        -- only whole lines: a last line without its newline is still being appended
        local lineno = 0
        for line in (read_file(path) or ""):gmatch("([^\n]*)\n") do
          lineno = lineno + 1
          if line:find("%S") then
            local okd, rec = pcall(json.decode, line)
            if not okd then fail("%s:%d: not a trial record (%s)", path, lineno, rec) end
            add(rec, path .. ":" .. lineno)
          end
        end
      end
    end
  end
  return by_id, n
end

local function encode_record(rec) return json.encode(rec, { nonfinite = "null" }) end

-- The records sorted, best first; trials that did not finish well at the end, by id.
local function ranked(by_id)
  local list = {}
  for _, rec in next, by_id do list[#list + 1] = rec end
  table.sort(list, ranks_before)
  return list
end

-- ---- one trial ----

local function is_model(v)
  local mt = type(v) == "userdata" and getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__name") == "fmnist.Model"
end

local function is_dataset(v)
  local mt = type(v) == "userdata" and getmetatable(v)
  return type(mt) == "table" and rawget(mt, "__name") == "fmnist.Dataset"
end

-- The training and validation sets of the search.
local function load_data(S)
  local pool, val
  if S.data then
    local a, b = S.data()
    if not is_dataset(a) then
      fail("data() must return the training set (a fmnist.Dataset) and optionally the validation set; it returned %s", type(a))
    end
    if b ~= nil then
      if not is_dataset(b) then fail("data()'s second result must be the validation set (a fmnist.Dataset), got %s", type(b)) end
      if S.validation or S.images then
        fail("data() returned a validation set, so 'validation' and 'images' do not apply; leave them out")
      end
      if #a == 0 or #b == 0 then fail("data() returned an empty set") end
      return { train = a, val = b }
    end
    pool = a
  else
    pool = fm.load("train")
  end
  if S.images then
    if S.images > #pool then fail("'images' is %d but the training data has %d", S.images, #pool) end
    pool = pool:split(S.images / #pool, { seed = S.seed, stratify = true })
    if #pool > S.images then pool = pool:subset(1, S.images) end
  end
  local train
  train, val = pool:split(1 - (S.validation or 0.1), { seed = S.seed, stratify = true })
  if #train == 0 or #val == 0 then
    fail("the training data (%d images) is too small to hold out a validation set", #pool)
  end
  return { train = train, val = val }
end

local function fit_options(S, params)
  local opts
  if type(S.fit) == "function" then
    opts = S.fit(copy(params))
    if type(opts) ~= "table" then fail("fit(params) must return a table of fit options, got %s", type(opts)) end
    opts = copy(opts)
    for k in next, opts do
      if FIT_RESERVED[k] then fail("fit option '%s' is set by the search", tostring(k)) end
    end
  else
    opts = copy(S.fit or {})
    for name, v in next, params do
      if FIT_PARAMS[name] then opts[name] = v end
    end
  end
  return opts
end

local function base_record(S, a)
  return { trial = a.trial, config = a.config, rung = a.rung, epochs = a.epochs, params = a.params,
           parent = a.parent, metric = S.metric, search = S.fingerprint, version = VERSION }
end

local function first_line(msg)
  msg = tostring(msg)
  return msg:match("^[^\n]*")
end

-- Trains trial a; writes its record (and its model when it is the best so far) to S.dir.
-- Returns the record, or nil and "interrupted" after Ctrl-C (nothing is written then).
local function run_trial(S, ctx, a)
  local rec = base_record(S, a)
  local t0 = fm.clock()
  local history, model, fit_history = {}, nil, nil
  if a.skip then
    rec.status, rec.error = "skipped", a.skip
  else
    local ok, err = xpcall(function()
      fm.seed(S.train_seed)
      model = S.model(copy(a.params), { trial = a.trial, config = a.config, seed = S.train_seed })
      if not is_model(model) then
        fail("the model function returned %s, not a model (fm.MLP{...}, fm.CNN{...}, ...)",
          type(model) == "userdata" and "a userdata" or type(model))
      end
      local opts = fit_options(S, a.params)
      opts.epochs, opts.seed, opts.threads, opts.verbose = a.epochs, S.train_seed, 1, false
      opts.validation = ctx.val
      opts.on_epoch = function(e, r)
        history[e] = { epoch = e, loss = r.loss, accuracy = r.accuracy, val_loss = r.val_loss,
                       val_accuracy = r.val_accuracy, lr = r.lr }
      end
      fit_history = model:fit(ctx.train, opts)
      -- fit returns, marked, when Ctrl-C stopped it: the trial did not finish
      if type(fit_history) == "table" and fit_history.interrupted then error("interrupted!", 0) end
    end, function(e)
      return { message = tostring(e), traceback = debug.traceback(tostring(e), 2) }
    end)
    if not ok then
      if is_interruption(err.message) then return nil, "interrupted" end
      rec.status = err.message:find("diverged", 1, true) and "diverged" or "error"
      rec.error = first_line(err.message)
      rec.traceback = err.traceback
    else
      local best_epoch = type(fit_history) == "table" and math.tointeger(fit_history.best_epoch)
      local last = history[best_epoch or #history]
      rec.score = last and last[S.metric]
      if finite(rec.score) then
        rec.status = "ok"
      else
        rec.status = "diverged"
        rec.score = nil
        rec.error = string.format("the last epoch's %s is %s", S.metric, tostring(last and last[S.metric]))
      end
    end
  end
  rec.history = history
  rec.seconds = fm.clock() - t0
  rec.host = P.hostname()
  rec.pid = P.pid()
  rec.finished = os.date("!%Y-%m-%dT%H:%M:%SZ")
  if rec.status == "ok" then
    -- keep the model when it beats every record there is now (see finish: the best trial of the
    -- search always did, so best.fmn always has a model to come from)
    local by_id = gather(S.dir, S)
    local best = ranked(by_id)[1]
    if not best or ranks_before(rec, best) then
      local info = model.info
      if type(info) == "table" then
        info.tune_trial, info.tune_score, info.tune_metric = a.trial, rec.score, S.metric
        info.tune_params = json.encode(a.params)
        info.tune_search = S.fingerprint
      end
      model:save(join(join(S.dir, "models"), a.trial .. ".fmn"))
    end
  end
  P.write_file(join(join(S.dir, "trials"), a.trial .. ".json"), encode_record(rec) .. "\n")
  return rec
end

-- ---- printing ----

local function format_value(v)
  if math.type(v) == "float" then return string.format("%.4g", v) end
  if type(v) == "table" then return json.encode(v) end
  return tostring(v)
end

local function params_text(S, params)
  local parts = {}
  for _, name in ipairs(S.names) do
    if params[name] ~= nil then parts[#parts + 1] = name .. "=" .. format_value(params[name]) end
  end
  return table.concat(parts, " ")
end

local function progress(S, rec, finished)
  if not S.verbose then return end
  local what
  if rec.status == "ok" then
    what = string.format("%s %.4f", S.metric, rec.score)
  else
    what = rec.status .. ": " .. tostring(rec.error)
  end
  local rung = S.method == "halving" and string.format(" rung %d (%d ep)", rec.rung, rec.epochs) or ""
  print(string.format("%strial %d%s  %s  %s  %.1f s",
    finished and string.format("[%d/%d] ", finished, S.total) or "", rec.trial, rung, what,
    params_text(S, rec.params), rec.seconds or 0))
  io.stdout:flush()
end

-- fm.tune.table(records [, {top = n}]) -> text: rank, trial, score, parameters, seconds, status.
function M.table(records, opts)
  if type(records) ~= "table" then fail("table: records must be a list (fm.tune.load(dir))") end
  opts = require("fmnist.check").options("tune: table", opts, { top = true })
  local top = opts.top or #records
  if math.type(top) ~= "integer" or top < 0 then
    fail("table: top must be a whole number of at least 0, got %s", tostring(top))
  end
  local names, seen, halving = {}, {}, false
  for _, rec in ipairs(records) do
    for k in next, rec.params or {} do
      if not seen[k] then seen[k], names[#names + 1] = true, k end
    end
    halving = halving or (rec.rung or 0) > 0
  end
  table.sort(names)
  local header = { "rank", "trial" }
  if halving then header[#header + 1] = "epochs" end
  header[#header + 1] = records[1] and records[1].metric or "score"
  for _, k in ipairs(names) do header[#header + 1] = k end
  header[#header + 1] = "seconds"
  header[#header + 1] = "status"
  local rows = { header }
  for i, rec in ipairs(records) do
    if i > top then break end
    local row = { tostring(i), tostring(rec.trial) }
    if halving then row[#row + 1] = tostring(rec.epochs) end
    row[#row + 1] = rec.status == "ok" and string.format("%.4f", rec.score) or "-"
    for _, k in ipairs(names) do row[#row + 1] = rec.params[k] ~= nil and format_value(rec.params[k]) or "" end
    row[#row + 1] = string.format("%.1f", rec.seconds or 0)
    row[#row + 1] = rec.status
    rows[#rows + 1] = row
  end
  local widths = {}
  for _, row in ipairs(rows) do
    for j, cell in ipairs(row) do widths[j] = math.max(widths[j] or 0, utf8.len(cell) or #cell) end
  end
  local lines = {}
  for _, row in ipairs(rows) do
    local cells = {}
    for j, cell in ipairs(row) do cells[j] = cell .. string.rep(" ", widths[j] - (utf8.len(cell) or #cell)) end
    lines[#lines + 1] = (table.concat(cells, "  "):gsub("%s+$", ""))
  end
  return table.concat(lines, "\n")
end

-- ---- the end of a search: the table, the best model, the plots ----

local function draw_plots(S, list)
  local ok_recs = {}
  for _, rec in ipairs(list) do
    if rec.status == "ok" then ok_recs[#ok_recs + 1] = rec end
  end
  -- a plot needs two different scores (gnuplot warns about a flat range)
  local lo, hi = math.huge, -math.huge
  for _, rec in ipairs(ok_recs) do lo, hi = math.min(lo, rec.score), math.max(hi, rec.score) end
  if #ok_recs < 2 or lo == hi then return {} end
  table.sort(ok_recs, function(a, b) return a.trial < b.trial end)
  local files = {}
  local hib = higher_is_better(S.metric)
  local ids, scores, best, bestv = {}, {}, {}, nil
  for i, rec in ipairs(ok_recs) do
    ids[i], scores[i] = rec.trial, rec.score
    if bestv == nil or (hib and rec.score > bestv) or (not hib and rec.score < bestv) then bestv = rec.score end
    best[i] = bestv
  end
  files[#files + 1] = fm.plot.lines({ { name = S.metric, values = scores, x = ids },
    { name = "best so far", values = best, x = ids } }, {
    title = "Optimisation history", xlabel = "trial", ylabel = S.metric,
    file = join(S.dir, "history.png") })
  local groups, labels = nil, nil
  if S.method == "halving" then
    groups, labels = {}, {}
    for i, rec in ipairs(ok_recs) do groups[i] = rec.rung end
    for _, r in ipairs(S.plan) do
      labels[#labels + 1] = string.format("rung %d (%d epoch%s)", r.rung, r.epochs, r.epochs == 1 and "" or "s")
    end
  end
  for _, name in ipairs(S.names) do
    local d = S.space[name]
    local xs, ys, xlabel = {}, {}, name
    local index = {}
    if d.kind == "choice" then
      local numeric = true
      for _, v in ipairs(d.values) do numeric = numeric and type(v) == "number" end
      if not numeric then
        local names = {}
        for i, v in ipairs(d.values) do
          index[json.encode(v)] = i
          names[i] = i .. " = " .. format_value(v)
        end
        xlabel = name .. " (" .. table.concat(names, ", ") .. ")"
        if #xlabel > 160 then xlabel = xlabel:sub(1, 157) .. "..." end
      end
    end
    local log = d.kind == "loguniform" or (d.kind == "int" and d.log)
    if log then xlabel = "log10(" .. name .. ")" end
    local distinct = {}
    for i, rec in ipairs(ok_recs) do
      local v = rec.params[name]
      if type(v) ~= "number" then v = index[json.encode(v)] or 0 end
      xs[i] = log and math.log(v, 10) or v
      ys[i] = rec.score
      distinct[xs[i]] = true
    end
    if next(distinct, next(distinct)) ~= nil then -- two values at least
      files[#files + 1] = fm.plot.scatter(xs, ys, {
      title = name .. " against " .. S.metric, xlabel = xlabel, ylabel = S.metric,
        groups = groups, labels = labels, pointsize = 1, file = join(S.dir, "param-" .. name .. ".png"),
        -- a long label of choices (7 pixels a character, centred under the plot) needs a wider figure
        size = { math.max(800, 9 * #xlabel + 200), 600 } })
    end
  end
  return files
end

-- Rewrites trials.jsonl from every record, moves the best trial's model to best.fmn (removing
-- the others) and draws the plots. Returns the ranked records and a summary.
local function finish(S)
  local by_id, n = gather(S.dir, S)
  local ids = sorted_keys(by_id)
  table.sort(ids)
  local lines = {}
  for i, id in ipairs(ids) do lines[i] = encode_record(by_id[id]) .. "\n" end
  P.write_file(join(S.dir, "trials.jsonl"), table.concat(lines))
  local list = ranked(by_id)
  local best = list[1] and list[1].status == "ok" and list[1] or nil
  local note
  local models = join(S.dir, "models")
  if best then
    local from = join(models, best.trial .. ".fmn")
    local to = join(S.dir, "best.fmn")
    if exists(from) then
      local ok, err = os.rename(from, to)
      if not ok then fail("cannot move %s to %s: %s", from, to, err) end
    else
      local m = exists(to) and protect(fm.load_model, to)
      local info = m and m.info or {}
      if tonumber(info.tune_trial) ~= best.trial or info.tune_search ~= S.fingerprint then
        note = string.format("the model of the best trial (%d) is not in %s: it was trained on "
          .. "another host (%s); copy its models/%d.fmn here and collect again", best.trial, models,
          tostring(best.host), best.trial)
      end
    end
  end
  local names = protect(P.list, models)
  for _, name in ipairs(type(names) == "table" and names or {}) do
    if name:find("^%d+%.fmn$") then os.remove(join(models, name)) end
  end
  local files = {}
  local okp, err = pcall(draw_plots, S, list)
  if okp then
    files = err
  else
    if is_interruption(err) then error(err, 0) end
    io.stderr:write("tune: the plots could not be drawn: ", tostring(err), "\n")
  end
  local missing = {}
  for id = 0, S.total - 1 do
    if not by_id[id] then missing[#missing + 1] = id end
  end
  return list, { finished = n, total = S.total, missing = missing, best = best, note = note,
                 files = files }
end

local function print_summary(S, list, summary)
  if not S.verbose then return end
  print()
  print(string.format("%d of %d trials finished; results in %s", summary.finished, summary.total,
    join(S.dir, "trials.jsonl")))
  if #list > 0 then print(M.table(list, { top = 10 })) end
  if summary.best then
    print(string.format("best: trial %d, %s %.4f, %s; model in %s", summary.best.trial, S.metric,
      summary.best.score, params_text(S, summary.best.params), join(S.dir, "best.fmn")))
  end
  if summary.note then print("note: " .. summary.note) end
  io.stdout:flush()
end

-- ---- running a search here ----

local function count(t)
  local n = 0
  for _ in next, t do n = n + 1 end
  return n
end

local function append_line(S, rec)
  P.append(join(S.dir, "trials.jsonl"), encode_record(rec) .. "\n")
end

local function run_here(S, done)
  local ctx
  for _, r in ipairs(S.plan) do
    for id = r.first, r.first + r.count - 1 do
      if not done[id] then
        local a = assert(assign(S, id, done))
        ctx = ctx or load_data(S)
        local rec, why = run_trial(S, ctx, a)
        if why then return why end
        done[id] = rec
        append_line(S, rec)
        progress(S, rec, count(done))
        collectgarbage()
      end
    end
  end
end

-- Messages between the search and its workers: a line "kind length" and length bytes.
local function send_frame(ch, kind, payload)
  payload = payload or ""
  return ch:send(kind .. " " .. #payload .. "\n" .. payload)
end

local function receive_frame(ch)
  local head = ch:receive()
  if not head then return nil end
  local kind, n = head:match("^(%a+) (%d+)$")
  if not kind then fail("a worker sent something that is not a message: %q", head:sub(1, 80)) end
  local payload = ch:receive(tonumber(n))
  if not payload then return nil end
  return kind, payload
end

-- The description a worker gets: the file it came from, or the table itself with its functions.
local function spec_frames(S)
  local header = { overrides = S.overrides }
  if S.file then
    header.file = S.file
    return json.encode(header), nil
  end
  return json.encode(header), ship(S.spec, "spec")
end

local function new_pool(S)
  local pool = { workers = {}, S = S }
  local exe = P.executable()
  local header, code = spec_frames(S)
  function pool.spawn()
    local proc = P.spawn({ exe, "-e", WORKER_CODE }, {
      channel = true,
      env = { LUA_PATH_5_4 = package.path, LUA_CPATH_5_4 = package.cpath },
    })
    local w = { proc = proc, state = "starting" }
    pool.workers[#pool.workers + 1] = w
    send_frame(proc, "spec", header)
    if code then send_frame(proc, "code", code) end
    return w
  end
  function pool.procs()
    local list = {}
    for i, w in ipairs(pool.workers) do list[i] = w.proc end
    return list
  end
  function pool.remove(w)
    for i, x in ipairs(pool.workers) do
      if x == w then table.remove(pool.workers, i) break end
    end
  end
  -- Ends every worker: "quit" to the idle ones, Ctrl-C (which stops fit after its batch) to the
  -- busy ones when interrupted; after a few seconds the rest are killed.
  function pool.stop(interrupted)
    for _, w in ipairs(pool.workers) do
      send_frame(w.proc, "quit")
      w.proc:close()
      if interrupted and w.state ~= "idle" then w.proc:kill("INT") end
    end
    local deadline = fm.clock() + (interrupted and 10 or 60)
    for _, w in ipairs(pool.workers) do
      while not w.proc:wait(true) do
        if fm.clock() > deadline then
          w.proc:kill("KILL")
          w.proc:wait()
          break
        end
        P.sleep(0.02)
      end
    end
    pool.workers = {}
  end
  return setmetatable(pool, { __close = function(p, err) if #p.workers > 0 then p.stop(err ~= nil) end end })
end

local function death_message(proc)
  local how, code, name = proc:wait()
  if how == "exited" then return string.format("worker process %d ended with status %d", proc.pid, code) end
  if how == "signaled" then return string.format("worker process %d was killed by %s", proc.pid, name) end
  return string.format("worker process %d ended", proc.pid)
end

local function run_workers(S, done)
  local pool <close> = new_pool(S)
  local wanted = S.workers
  for _, r in ipairs(S.plan) do
    local pending = {}
    for id = r.first, r.first + r.count - 1 do
      if not done[id] then pending[#pending + 1] = assert(assign(S, id, done)) end
    end
    local next_one, running = 1, 0
    while next_one <= #pending or running > 0 do
      -- hand out trials to idle workers, and start workers while there is work for them
      for _, w in ipairs(pool.workers) do
        if w.state == "idle" and next_one <= #pending then
          w.state, w.trial = "busy", pending[next_one]
          next_one, running = next_one + 1, running + 1
          send_frame(w.proc, "trial", json.encode(w.trial))
        end
      end
      local starting = 0
      for _, w in ipairs(pool.workers) do
        if w.state == "starting" then starting = starting + 1 end
      end
      while #pool.workers < wanted and starting < #pending - next_one + 1 do
        pool.spawn()
        starting = starting + 1
      end
      for _, proc in ipairs(P.poll(pool.procs(), 1.0)) do
        local w
        for _, x in ipairs(pool.workers) do
          if x.proc == proc then w = x end
        end
        local kind, payload = receive_frame(proc)
        if kind == "ready" then
          w.state = "idle"
        elseif kind == "done" then
          local rec = check_record(json.decode(payload), "a worker's record")
          done[rec.trial] = rec
          append_line(S, rec)
          progress(S, rec, count(done))
          w.state, w.trial, running = "idle", nil, running - 1
        elseif kind == "interrupted" then
          pool.stop(true)
          return "interrupted"
        elseif kind == "error" then
          error(payload, 0)
        elseif kind == nil then
          -- the worker died: during a trial, the trial is recorded with what happened
          local msg = death_message(proc)
          pool.remove(w)
          if w.state ~= "busy" then fail("%s before it was ready", msg) end
          local rec = base_record(S, w.trial)
          rec.status, rec.error = "error", msg .. " during the trial"
          rec.history, rec.host, rec.seconds = {}, P.hostname(), 0
          rec.finished = os.date("!%Y-%m-%dT%H:%M:%SZ")
          P.write_file(join(join(S.dir, "trials"), rec.trial .. ".json"), encode_record(rec) .. "\n")
          done[rec.trial] = rec
          append_line(S, rec)
          progress(S, rec, count(done))
          running = running - 1
        else
          fail("a worker sent an unknown message '%s'", kind)
        end
      end
    end
  end
  pool.stop(false)
end

-- The search as described; overrides: {dir =, workers =, verbose =} from the command line.
local function search(S)
  setup_dir(S)
  local done, n = gather(S.dir, S)
  if S.verbose then
    local function plural(n, word) return string.format("%d %s%s", n, word, n == 1 and "" or "s") end
    print(string.format("search %s: %s, %s%s, %s%s, seed %d, %s", S.fingerprint, S.method,
      plural(S.total, "trial"), S.method == "halving" and (" in " .. plural(#S.plan, "rung")) or "",
      plural(S.epochs, "epoch"), S.method == "halving" and " at most" or " each", S.seed,
      S.workers == 0 and "in this process" or string.format("%d worker processes", S.workers)))
    if n > 0 then print(string.format("resuming: %d of %d trials finished before", n, S.total)) end
    io.stdout:flush()
  end
  local ok, why = pcall(S.workers == 0 and run_here or run_workers, S, done)
  local interrupted = (ok and why == "interrupted") or (not ok and is_interruption(why))
  if not ok and not interrupted then error(why, 0) end
  local list, summary = finish(S)
  print_summary(S, list, summary)
  if interrupted then
    fail("interrupted: %d of %d trials finished and are kept in %s; run the same search again "
      .. "to go on", summary.finished, summary.total, S.dir)
  end
  return list, summary
end

-- ---- the public functions ----

-- fm.tune(description | "search.lua" [, {dir =, workers =, verbose =}]) -> records, best first.
function M.run(spec, overrides)
  local file
  if type(spec) == "string" then
    file = spec
    spec = load_spec_file(spec)
  end
  if overrides ~= nil and type(overrides) ~= "table" then
    fail("the second argument must be a table of overrides ({dir =, workers =, verbose =})")
  end
  for k in next, overrides or {} do
    if k ~= "dir" and k ~= "workers" and k ~= "verbose" then
      fail("unknown override '%s' (known: dir, verbose, workers)", tostring(k))
    end
  end
  return (search(prepare(spec, overrides, file)))
end

-- fm.tune.load(dir) -> every record in dir, best first; failed trials last.
function M.load(dir)
  if type(dir) ~= "string" then fail("load: dir must be a string, got %s", type(dir)) end
  if not exists(join(dir, "search.json")) then fail("load: %s holds no search (no search.json)", dir) end
  local by_id = gather(dir)
  local search_id
  for _, rec in next, by_id do
    search_id = search_id or rec.search
    if rec.search ~= search_id then fail("load: %s mixes the trials of two searches", dir) end
  end
  return ranked(by_id)
end

-- fm.tune.spec(description | file [, overrides]) -> the checked search (used by the command).
M.spec = function(spec, overrides)
  local file
  if type(spec) == "string" then
    file = spec
    spec = load_spec_file(spec)
  end
  return prepare(spec, overrides, file)
end

-- fm.tune.params(search, config) -> the parameters of a configuration (rung 0's trial config).
function M.params(S, config) return params_of(S, config) end

-- fm.tune.data(description | file | search) -> training set, validation set: the data every
-- trial of the search trains and is scored on (to train something else on the same split).
function M.data(spec)
  local S = PREPARED[spec] and spec or M.spec(spec)
  local ctx = load_data(S)
  return ctx.train, ctx.val
end

-- Runs trial id of search S alone (fmnist-lua tune SPEC --trial N). Returns the record and
-- "already" when it had finished before, or nil and "interrupted".
function M.trial(S, id)
  setup_dir(S)
  local done = gather(S.dir, S)
  if done[id] then return done[id], "already" end
  local a, why = assign(S, id, done)
  if not a then fail("%s", why) end
  local ctx = not a.skip and load_data(S) or nil
  return run_trial(S, ctx, a)
end

-- Merges what is in S.dir (fmnist-lua tune SPEC --collect DIR): returns records and summary.
function M.collect(S)
  setup_dir(S)
  local list, summary = finish(S)
  print_summary(S, list, summary)
  return list, summary
end

M.plan = function(S) return S.plan end
M.progress = progress

-- The worker process: runs the trials its parent sends until told to stop. Started by the
-- search as `<this program> -e 'require("fmnist").tune._worker()'` with a channel.
function M._worker()
  local ch = P.channel()
  local ok, err = pcall(function()
    local kind, payload = receive_frame(ch)
    if kind ~= "spec" then return end
    local header = json.decode(payload)
    local spec, file
    if header.file then
      file = header.file
      spec = load_spec_file(file)
    else
      local k2, code = receive_frame(ch)
      if k2 ~= "code" then return end
      spec = unship(code)
    end
    local S = prepare(spec, header.overrides, file)
    local ctx = load_data(S)
    send_frame(ch, "ready")
    while true do
      kind, payload = receive_frame(ch)
      if kind ~= "trial" then return end
      local a = json.decode(payload)
      local rec, why = run_trial(S, ctx, a)
      if why then
        send_frame(ch, "interrupted", tostring(a.trial))
        return
      end
      send_frame(ch, "done", encode_record(rec))
      collectgarbage()
    end
  end)
  if not ok and not is_interruption(err) then send_frame(ch, "error", tostring(err)) end
end

-- fm.tune{...} runs a search.
return setmetatable(M, { __call = function(_, spec, overrides) return M.run(spec, overrides) end })
