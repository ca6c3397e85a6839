-- fmnist.help: every example in the help text runs and prints what it says; documented names
-- exist and their option lists are the ones the code accepts; help finds values, names and
-- classes; doc/API.md is what `fmnist-lua help --markdown` writes; and every public function has
-- help: the module's functions and tables of functions (fm.image, fm.process, ...), every
-- embedded Lua module's, and the methods of every class. A new function without an entry fails
-- here, naming it.
local T = require "testlib"
local fm = require "fmnist"
local H = require "fmnist.help"

local host = os.getenv("FMNIST_HOST") or "./fmnist-lua"
local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local root = os.getenv("PWD")
local abs_host = host:sub(1, 1) == "/" and host or (root .. "/" .. host:gsub("^%./", ""))
local have_dataset = pcall(fm.load, "test")
local have_gnuplot = os.execute("command -v " .. (os.getenv("FMNIST_GNUPLOT") or "gnuplot")
  .. " >/dev/null 2>&1")

-- ---- every example runs, in a folder of its own (they write figures where they stand) ----
do
  local dir = T.tmpdir()
  local runner = dir .. "/run_examples.lua"
  T.write(runner, [[
local fm = require "fmnist"
local H = require "fmnist.help"
local have = { dataset = ]] .. tostring(have_dataset) .. [[, gnuplot = ]] .. tostring(have_gnuplot and true or false) .. [[ }
for _, e in ipairs(H.entries()) do
  if e.example then
    local needs = type(e.needs) == "table" and e.needs or { e.needs }
    local missing
    for _, n in ipairs(needs) do if not have[n] then missing = n end end
    if missing then
      print("EXAMPLE skip " .. e.name .. " (needs the " .. missing .. ")")
    else
      local ok, msg = H.run_example(e)
      print("EXAMPLE " .. (ok and "ok " or "fail ") .. e.name .. (ok and "" or (": " .. tostring(msg):gsub("\n", " "))))
    end
  end
end
]])
  local p = io.popen(("cd %s && %s run_examples.lua 2>&1"):format(shell_quote(dir), shell_quote(abs_host)))
  local out = p:read("a")
  p:close()
  local count = 0
  for status, rest in out:gmatch("EXAMPLE (%a+) ([^\n]*)") do
    count = count + 1
    if status == "skip" then
      T.ok(true, "# SKIP the example of " .. rest)
    else
      T.ok(status == "ok", "the example of " .. rest)
    end
  end
  T.ok(count >= 200, ("every entry's example ran (%d)"):format(count))
  if count == 0 then print("# " .. out:gsub("\n", "\n# ")) end
end

-- ---- a failing example is caught ----
do
  local e = { name = "t.bad", text = "", example = "print(1 + 1)   --> 3\n" }
  local ok, msg = H.run_example(e)
  T.ok(not ok and msg:find('line 1 printed "2", not "3"', 1, true), "an example printing the wrong thing fails: " .. tostring(msg))
  ok, msg = H.run_example({ name = "t.err", text = "", example = "error('broken')\n" })
  T.ok(not ok and msg:find("broken", 1, true), "an example raising fails")
  ok = H.run_example({ name = "t.prefix", text = "", example = "print('abcdef')   --> abc...\n" })
  T.ok(ok, "a final ... matches the rest")
end

-- ---- entries: each names something that exists ----
local entries = H.entries()
T.ok(#entries >= 200, "the help has " .. #entries .. " entries")
local instance = {
  Model = fm.LogReg {},
  Result = fm.metrics(fm.tensor { 0, 1 }, fm.tensor { 0, 1 }),
  Notebook = fm.notebook.new("t", { T.tmpdir() }),
}
if have_dataset then instance.Dataset = fm.load("test") end
instance.Tensor = fm.zeros(1)
for _, e in ipairs(entries) do
  local class, sep, member = e.name:match("^([%w_]+)([.:])([%w_]+)$")
  local owner = class and H.get(class)
  if owner and owner.class then
    local obj = instance[class]
    if obj then
      local ok, v = pcall(function() return obj[member] end)
      if sep == ":" then
        T.ok(ok and type(v) == "function", e.name .. " is a method")
      elseif not (class == "Result" and member == "loss") and not (class == "Notebook" and member == "session") then
        T.ok(ok and v ~= nil, e.name .. " is a field")
      end
    end
  elseif e.value ~= false and not e.name:find(" ") and e.name ~= "history" then
    T.ok(H.value_of(e) ~= nil or e.name:match("^fm%.[%w_]+$") and fm[e.name:sub(4)] ~= nil,
      e.name .. " names a value that exists")
  end
  T.ok(type(e.sig) == "string" and #e.text > 10, e.name .. ": a signature and a paragraph")
  T.ok(e.example ~= nil, e.name .. ": an example")
end

-- ---- option lists are the ones the code knows ----
-- Each call passes an unknown key; the error lists the known ones, which must be the documented.
local function known_of(msg) return (tostring(msg):match("%(known: ([^)]*)%)")) end
local function sorted_names(list)
  local t = {}
  for _, o in ipairs(list) do t[#t + 1] = o[1] end
  table.sort(t)
  return table.concat(t, ", ")
end
local function sorted_known(s)
  local t = {}
  for w in s:gmatch("[^, ]+") do t[#t + 1] = w end
  table.sort(t)
  return table.concat(t, ", ")
end
local probes = {
  ["fm.LogReg"] = function(o) return fm.LogReg(o) end,
  ["fm.MLP"] = function(o) return fm.MLP(o) end,
  ["fm.CNN"] = function(o) return fm.CNN(o) end,
  ["fm.plot.bar"] = function(o) return fm.plot.bar({ 1 }, o) end,
  ["fm.plot.hist"] = function(o) return fm.plot.hist({ 1 }, o) end,
  ["fm.plot.lines"] = function(o) return fm.plot.lines({ 1 }, o) end,
  ["fm.plot.scatter"] = function(o) return fm.plot.scatter({ 1 }, { 1 }, o) end,
  ["fm.plot.heatmap"] = function(o) return fm.plot.heatmap({ { 1 } }, o) end,
  ["fm.plot.image"] = function(o) return fm.plot.image(fm.zeros(2, 2), o) end,
  ["fm.plot.images"] = function(o) return fm.plot.images({ fm.zeros(2, 2) }, o) end,
  ["fm.pretty.show"] = function(o) return fm.pretty.show(1, o) end,
  ["fm.termimage.image"] = function(o) return fm.termimage.image(fm.zeros(2, 2), o) end,
  ["fm.termimage.images"] = function(o) return fm.termimage.images({ fm.zeros(2, 2) }, o) end,
  ["fm.termimage.heatmap"] = function(o) return fm.termimage.heatmap(fm.zeros(2, 2), o) end,
  ["fm.termimage.sixel"] = function(o) return fm.termimage.sixel(fm.zeros(2, 2), o) end,
  ["Model:fit"] = function(o) return fm.LogReg {}:fit(fm.load("test"):subset(1, 2), o) end,
  ["fm.json.encode"] = function(o) return fm.json.encode(1, o) end,
  ["fm.json.decode"] = function(o) return fm.json.decode("1", o) end,
  ["fm.image.grey"] = function(o) return fm.image.grey(fm.zeros(2, 2), o) end,
  ["fm.image.trim"] = function(o) return fm.image.trim(fm.zeros(2, 2), o) end,
  ["fm.image.center"] = function(o) return fm.image.center(fm.zeros(2, 2), 4, o) end,
  ["fm.image.prepare"] = function(o) return fm.image.prepare(fm.zeros(2, 2), o) end,
  ["fm.process.spawn"] = function(o) return fm.process.spawn({ "true" }, o) end,
  ["fm.tune.int"] = function(o) return fm.tune.int(1, 2, o) end,
  ["fm.tune"] = function(o) return fm.tune({}, o) end,
}
for name, call in pairs(probes) do
  local e = H.get(name)
  if name == "Model:fit" and not have_dataset then
    T.ok(true, "# SKIP the options of Model:fit (needs the dataset)")
  elseif e then
    local opts = { no_such_option_here = true }
    local ok, msg = pcall(call, opts)
    local known = known_of(msg)
    T.ok(not ok and known, name .. " refuses an unknown option and lists the known ones")
    if known then
      T.eq(sorted_names(e.options or {}), sorted_known(known), name .. ": the documented options are the known ones")
    end
  end
end

-- ---- finding help ----
T.ok(H.text(fm.load):find("^fm%.load%(what %[, opts%]%) %-> Dataset"), "help(fm.load): its signature first")
T.ok(H.text("fit"):find("^model:fit%(ds"), "help \"fit\": found by the end of its name")
T.ok(H.text("Model:fit"):find("Options:\n    epochs", 1, true), "help lists the options")
T.ok(H.text(fm.LogReg {}):find("Fields:", 1, true) and H.text(fm.LogReg {}):find("model:fit(ds [, opts]) -> history", 1, true),
  "help(model): the class, its fields and methods")
T.ok(H.text(fm.zeros(1)):find("^Tensor"), "help(a tensor): the Tensor class")
T.ok(H.text("no such name at all"):find("No help for 'no such name at all'", 1, true), "an unknown name says so")
T.ok(H.text("save"):find("entries match 'save'", 1, true), "several matches are listed")
T.ok(H.text(nil, false):find("Start here", 1, true) and H.text(nil, false):find("Models\n", 1, true),
  "help() lists the sections")
T.ok(H.text(fm):find("Tensors", 1, true), "help(fm) is the overview")
T.ok(H.text(function() end):find("No help for this function", 1, true), "a function without help says so")
T.ok(H.text(42):find("No help for a number value", 1, true), "a number has no help")
local src = H.source(fm.notebook.draw.confusion)
T.ok(src:find("^%-%- lua/fmnist/notebook%.lua:%d+\nfunction M%.draw%.confusion"), "??f: a built-in module's Lua source")
T.ok(H.source(fm.zeros):find("built in (C)", 1, true), "??f of a C function says it has none")
T.eq(H.fields("Model"), { "kind", "params", "epochs", "layers", "info", "defaults" }, "the fields of Model, for completion")
T.err("help: entry fm.load is defined twice", function()
  H.section("Again", 1)({ name = "fm.load", text = "x" })
end)
T.err("unknown key 'exmaple'", function() H.section("Again", 1)({ name = "t.x", text = "x", exmaple = "" }) end)

-- ---- doc/API.md is up to date ----
do
  local p = io.popen(shell_quote(host) .. " help --markdown")
  local generated = p:read("a")
  p:close()
  local file = T.read("doc/API.md")
  T.ok(file ~= nil, "doc/API.md exists")
  T.ok(file == generated, "doc/API.md is what `./fmnist-lua help --markdown > doc/API.md` writes (run it)")
  T.ok(generated:find("### <a id=\"model-fit\"></a>`model:fit(ds [, opts]) -> history`", 1, true),
    "API.md has the entries with anchors")
end

-- ---- `fmnist-lua help NAME` in a shell ----
do
  local p = io.popen(shell_quote(host) .. " help Dataset:split 2>&1; echo status $?")
  local out = p:read("a")
  p:close()
  T.ok(out:find("ds:split(fraction [, opts]) -> first, rest", 1, true) and out:find("status 0", 1, true),
    "fmnist-lua help NAME prints it")
  p = io.popen(shell_quote(host) .. " help no_such_thing_xyz 2>&1; echo status $?")
  out = p:read("a")
  p:close()
  T.ok(out:find("no help for 'no_such_thing_xyz'", 1, true) and out:find("status 1", 1, true),
    "fmnist-lua help with an unknown name: a message and status 1")
end

-- ---- every public function has help ----
local missing = {}
local function check(v, name)
  if type(v) == "function" and not H.entry_of(v) then missing[#missing + 1] = name end
end
local function walk_module(t, prefix)
  local keys = {}
  for k in pairs(t) do if type(k) == "string" and not k:match("^_") then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = rawget(t, k)
    if type(v) == "function" then check(v, prefix .. k)
    elseif type(v) == "table" and k == "draw" then walk_module(v, prefix .. k .. ".") end
  end
end
walk_module(fm, "fm.")
-- the tables of functions the C binding puts in the module (fm.image, fm.process, fm.png, ...)
for _, k in ipairs { "image", "process", "png", "gnuplot" } do
  T.ok(type(rawget(fm, k)) == "table", "fm." .. k .. " is a table of functions")
  walk_module(rawget(fm, k) or {}, "fm." .. k .. ".")
end
for key in pairs(package.preload) do
  local name = type(key) == "string" and key:match("^fmnist%.([%w_]+)$")
  if name and not name:match("^cmd_") and not name:match("^doc_") and name ~= "result" then
    local ok, m = pcall(require, key)
    if ok and type(m) == "table" then
      walk_module(m, (name == "host" and "host." or ("fm." .. name .. ".")))
    end
  end
end
walk_module(fm.notebook.Notebook, "Notebook:")
for _, class in ipairs { "fmnist.Tensor", "fmnist.Dataset", "fmnist.Model", "fmnist.Process" } do
  local mt = debug.getregistry()[class]
  local methods = mt and (rawget(mt, "methods") or (type(rawget(mt, "__index")) == "table" and rawget(mt, "__index")))
  T.ok(type(methods) == "table", class .. ": its methods are found")
  if methods then walk_module(methods, class:match("%.(%w+)$") .. ":") end
end
walk_module(require("fmnist.result").Result, "Result:")
table.sort(missing)
T.eq(missing, {}, "every public function has help (add an entry: help \"fm.help.section\")")
do
  -- the check itself: a function added to a module without an entry is found
  local before = #missing
  rawset(fm.image, "no_help_here", function() end)
  walk_module(fm.image, "fm.image.")
  rawset(fm.image, "no_help_here", nil)
  T.eq(missing[#missing], "fm.image.no_help_here", "a new function without help is named")
  T.eq(#missing, before + 1, "and only it")
end

T.done()
