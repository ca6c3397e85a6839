-- fmnist.cmd_tune: the `fmnist-lua tune` command (see fmnist.tune for the search itself).
--
--   fmnist-lua tune SPEC.lua [--dir DIR] [--workers N] [--quiet]   run or resume the whole search
--   fmnist-lua tune SPEC.lua --trial N [--dir DIR]                 run trial N alone
--   fmnist-lua tune SPEC.lua --collect DIR                         merge results, best.fmn, plots
--   fmnist-lua tune SPEC.lua --plan                                rungs, trial ids, epochs
--   fmnist-lua tune SPEC.lua --ids [RUNG]                          trial ids, one line
--   fmnist-lua tune SPEC.lua --range RUNG                          FIRST-LAST (sbatch --array)
--
-- SPEC.lua is a Lua file returning the search description table. Exit status: 0 when the work
-- was done (a trial that failed is recorded, and is done), 1 on an error, 130 after Ctrl-C.
local fm = require "fmnist"

local USAGE = [[
usage: fmnist-lua tune SPEC.lua [--dir DIR] [--workers N] [--quiet]
       fmnist-lua tune SPEC.lua --trial N [--dir DIR]
       fmnist-lua tune SPEC.lua --collect DIR
       fmnist-lua tune SPEC.lua --plan | --ids [RUNG] | --range RUNG

SPEC.lua returns the search description (see fm.tune): model, space, method, trials, epochs, ...
  (none)         run the whole search here in worker processes, resuming what is in DIR
  --trial N      run trial N alone and write DIR/trials/N.json (for GNU parallel, Slurm arrays)
  --collect DIR  merge the trials in DIR (from any number of hosts) into DIR/trials.jsonl,
                 keep the best model as DIR/best.fmn, draw the plots, print the table
  --plan         print the rungs with their trial ids and epochs
  --ids [RUNG]   print the trial ids (of one rung) on one line
  --range RUNG   print a rung's ids as FIRST-LAST
  --dir DIR      the results folder (default: the description's dir)
  --workers N    worker processes (0: in this process; default: the description's, or one per core)
  --quiet        no line per trial and no table
Exit status: 0 done, 1 error, 130 interrupted.]]

local OPTIONS = { dir = "value", workers = "value", trial = "value", collect = "value",
                  plan = "flag", ids = "optional", range = "value", quiet = "flag", help = "flag" }

local function option_names()
  local names = {}
  for k in pairs(OPTIONS) do names[#names + 1] = "--" .. k end
  table.sort(names)
  return table.concat(names, ", ")
end

local function parse(args)
  local o, spec = {}, nil
  local i = 1
  while i <= #args do
    local a = args[i]
    local name = a:match("^%-%-(.+)$")
    if name then
      local kind = OPTIONS[name]
      if not kind then error(string.format("unknown option '%s' (known: %s)", a, option_names()), 0) end
      if o[name] ~= nil then error(string.format("option '%s' is given twice", a), 0) end
      if kind == "flag" then
        o[name] = true
      elseif kind == "optional" then
        if args[i + 1] and args[i + 1]:find("^%d+$") then
          o[name] = args[i + 1]
          i = i + 1
        else
          o[name] = true
        end
      else
        if args[i + 1] == nil then error(string.format("option '%s' needs a value", a), 0) end
        o[name] = args[i + 1]
        i = i + 1
      end
    elseif spec == nil then
      spec = a
    else
      error(string.format("one search file only (got '%s' and '%s')", spec, a), 0)
    end
    i = i + 1
  end
  return o, spec
end

local function whole(name, text, lo)
  local n = text and text:find("^%d+$") and math.tointeger(tonumber(text))
  if not n or n < lo then
    error(string.format("option '--%s' needs a whole number%s, got '%s'", name,
      lo > 0 and (" from " .. lo) or "", tostring(text)), 0)
  end
  return n
end

local function rung_of(S, text, name)
  local r = whole(name, text, 0)
  if r >= #S.plan then
    error(string.format("the search has rungs 0 to %d, not %d", #S.plan - 1, r), 0)
  end
  return S.plan[r + 1]
end

local function run(args)
  local o, spec = parse(args)
  if o.help then
    print(USAGE)
    return 0
  end
  if not spec then
    io.stderr:write(USAGE, "\n")
    return 1
  end
  local modes = 0
  for _, k in ipairs { "trial", "collect", "plan", "ids", "range" } do
    if o[k] then modes = modes + 1 end
  end
  if modes > 1 then error("--trial, --collect, --plan, --ids and --range do not go together", 0) end
  if o.collect and o.dir then error("--collect names the folder already; leave --dir out", 0) end
  local overrides = {}
  if o.dir or o.collect then overrides.dir = o.dir or o.collect end
  if o.workers then overrides.workers = whole("workers", o.workers, 0) end
  if o.quiet then overrides.verbose = false end
  local tune = fm.tune
  if not (o.trial or o.collect or o.plan or o.ids or o.range) then
    local ok, err = pcall(tune.run, spec, overrides)
    if not ok then
      if tostring(err):find("interrupted", 1, true) then
        io.stderr:write(tostring(err), "\n")
        return 130
      end
      error(err, 0)
    end
    return 0
  end
  if o.trial then overrides.workers = 0 end
  local S = tune.spec(spec, overrides)
  if o.plan then
    print(string.format("%s search %s: %d trials", S.method, S.fingerprint, S.total))
    for _, r in ipairs(S.plan) do
      print(string.format("rung %d: trials %d-%d (%d), %d epoch%s", r.rung, r.first,
        r.first + r.count - 1, r.count, r.epochs, r.epochs == 1 and "" or "s"))
    end
    return 0
  end
  if o.ids then
    local first, last = 0, S.total - 1
    if o.ids ~= true then
      local r = rung_of(S, o.ids, "ids")
      first, last = r.first, r.first + r.count - 1
    end
    local ids = {}
    for id = first, last do ids[#ids + 1] = tostring(id) end
    print(table.concat(ids, " "))
    return 0
  end
  if o.range then
    local r = rung_of(S, o.range, "range")
    print(string.format("%d-%d", r.first, r.first + r.count - 1))
    return 0
  end
  if o.collect then
    tune.collect(S)
    return 0
  end
  local id = whole("trial", o.trial, 0)
  local rec, why = tune.trial(S, id)
  if why == "interrupted" then
    io.stderr:write(string.format("tune: trial %d interrupted; nothing was recorded\n", id))
    return 130
  end
  if why == "already" then
    if S.verbose then print(string.format("trial %d finished before (%s); nothing to do", id, rec.status)) end
    return 0
  end
  tune.progress(S, rec)
  return 0
end

-- Errors are printed as one line, without the traceback a script's error gets.
return function(args)
  args = require("fmnist.check").strings("fmnist-lua tune", args, "the arguments")
  local ok, status = pcall(run, args)
  if ok then return status end
  local msg = tostring(status)
  if not msg:find("^tune: ") then msg = "tune: " .. msg end
  io.stderr:write("fmnist-lua ", msg, "\n")
  if msg:find("interrupted", 1, true) then return 130 end
  return 1
end
