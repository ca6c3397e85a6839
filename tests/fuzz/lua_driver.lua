-- lua_driver.lua: the Lua side of the fuzz_lua and fuzz_lua_plot targets (tests/fuzz/fuzz_lua.c).
--
-- Called by the harness in a fresh Lua state with the fmnist module loaded, as
--   driver(mode, data, keys, names, plot)
-- mode "list":     returns every public callable of the module, one name a line, found by walking
--                  what the binding registered: the module table (with the pure-Lua modules it
--                  installs in package.preload as fmnist.NAME) and the metatables named fmnist.*
--                  in the registry (metamethods as Class.__name, methods as Class:name).
-- mode "fixtures": writes the small files the palette refers to into the current directory.
-- mode "run":      decodes data into calls and makes them; Lua errors are expected and ignored.
--                  Only crashes, sanitizer reports, leaks and hangs count, and the harness's own
--                  checks, which call fuzz_finding(message): a file named INJECTED appearing (a
--                  string reached a shell or gnuplot as a command), and with plot set, gnuplot
--                  dying or hanging while drawing, or refusing the commands an fm.plot figure
--                  sent it.
--
-- The bytes of data, read in order (running out of bytes ends the input):
--   op        0          a call by name: a length byte and that many bytes of name (an exact
--                        name from the list, else a hash of the bytes picks one)
--             1..0xDF    a call by number: with the next byte, an index into the list
--             0xE0..0xE7 a method of what an earlier call returned: slot op-0xE0, then a byte
--                        picking one of its functions (sorted by name), called with it first
--             0xE8..0xEF the value in slot op-0xE8 called as a function
--             0xF0..0xFF a full garbage collection
--   then a byte: the number of arguments (mod 7), and for a method (Class:name) when that byte is
--   under 0x80, one more byte picking a receiver of the class; then each argument from the palette
--   below.
-- Each call's first three results go to the result slots (8, reused in turn).
local mode, data, keys_text, names_text, plot = ...
local fm = require "fmnist"
local registry = debug.getregistry()

-- ---- the list of callables ----

-- Names that are not called, and why.
local EXCLUDED = {
  -- runs for a wall-clock time the caller chooses, by design (a benchmark)
  ["fm.notebook.images_per_second"] = true,
}

local function sorted_keys(t)
  local keys = {}
  for k in next, t do
    if type(k) == "string" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  return keys
end

-- The table a class keeps its methods in: metatable.methods, or __index when that is a table.
local function methods_of(mt)
  local m = rawget(mt, "methods")
  if type(m) ~= "table" then m = rawget(mt, "__index") end
  return type(m) == "table" and m or nil
end

local function enumerate()
  local names = {}
  local function add(name)
    if not EXCLUDED[name] then names[#names + 1] = name end
  end
  -- The pure-Lua modules appear as fm.NAME on first use: touch each one the module installed.
  for k in pairs(package.preload) do
    local sub = type(k) == "string" and k:match("^fmnist%.(.+)$")
    if sub then local _ = fm[sub] end
  end
  local seen = {}
  local function walk(prefix, t, depth)
    if seen[t] then return end
    seen[t] = true
    for _, k in ipairs(sorted_keys(t)) do
      local v = rawget(t, k)
      if type(v) == "function" then
        add(prefix .. "." .. k)
      elseif type(v) == "table" and depth < 3 then
        walk(prefix .. "." .. k, v, depth + 1)
      end
    end
  end
  walk("fm", fm, 1)
  for _, k in ipairs(sorted_keys(registry)) do
    local mt = registry[k]
    if k:match("^fmnist%.") and type(mt) == "table" and rawget(mt, "__name") == k then
      local class = k:sub(#"fmnist." + 1)
      for _, f in ipairs(sorted_keys(mt)) do
        if type(rawget(mt, f)) == "function" then add(class .. "." .. f) end
      end
      local methods = methods_of(mt)
      if methods then
        for _, f in ipairs(sorted_keys(methods)) do
          if type(rawget(methods, f)) == "function" then add(class .. ":" .. f) end
        end
      end
    end
  end
  return names
end

-- The list of a target: fuzz_lua_plot calls only the figures and the gnuplot process.
local function listed()
  local names = enumerate()
  if not plot then return names end
  local kept = {}
  for _, n in ipairs(names) do
    if n:match("^fm%.plot%.") or n:match("^fm%.gnuplot%.") then kept[#kept + 1] = n end
  end
  return kept
end

if mode == "list" then return table.concat(listed(), "\n") end

-- Finds a listed callable again in this state.
local function resolve(name)
  local class, sep, member = name:match("^(%u[%w_]*)([.:])(.+)$")
  if class then
    local mt = registry["fmnist." .. class]
    if sep == "." then return rawget(mt, member) end
    return rawget(methods_of(mt), member)
  end
  local v = fm
  local first = true
  for part in name:gmatch("[^.]+") do
    if first then
      first = false
    elseif v == fm then
      v = fm[part] -- the pure-Lua modules load on first use
    else
      v = rawget(v, part)
    end
  end
  return v
end

-- ---- fixtures: small real files for the palette ----

local IMAGES, SIDE = 12, 28

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  assert(f:write(s))
  assert(f:close())
end

-- An IDX pair of n images (a simple pattern per class) and their labels 0..9, 0, 1, ...
local function write_idx(prefix, n)
  local pixels = {}
  for i = 0, n - 1 do
    local c = i % 10
    for p = 0, SIDE * SIDE - 1 do
      pixels[#pixels + 1] = string.char(((p * (c + 3)) + i * 17) % 256)
    end
  end
  local labels = {}
  for i = 0, n - 1 do labels[#labels + 1] = string.char(i % 10) end
  write(prefix .. "-images-idx3-ubyte", string.pack(">I4I4I4I4", 0x803, n, SIDE, SIDE)
    .. table.concat(pixels))
  write(prefix .. "-labels-idx1-ubyte", string.pack(">I4I4", 0x801, n) .. table.concat(labels))
end

if mode == "fixtures" then
  write_idx("train", IMAGES)
  write_idx("t10k", 10)
  write_idx("fx", 3)
  local header = { "label" }
  for p = 1, SIDE * SIDE do header[#header + 1] = "pixel" .. p end
  local rows = { table.concat(header, ",") }
  for r = 0, 2 do
    local row = { tostring(r) }
    for p = 1, SIDE * SIDE do row[#row + 1] = tostring((p * 7 + r) % 256) end
    rows[#rows + 1] = table.concat(row, ",")
  end
  write("fx.csv", table.concat(rows, "\n") .. "\n")
  fm.seed(1)
  fm.rand(2, 3):save_npy("fx.npy")
  fm.rand(SIDE, SIDE):save_png("fx.png")
  fm.CNN { layers = { { "conv2d", 2, 3 }, "relu", { "maxpool", 2 }, { "dense", 10 } }, seed = 1 }
    :save("fx.fmn")
  return ""
end

-- ---- run: decoding ----

-- Mode "seeds", run by tests/fuzz/make_corpus.sh through the host:
--   fmnist-lua tests/fuzz/lua_driver.lua seeds KEYS_FILE OUT_DIR [plot]
-- writes a few inputs per callable (encoded as described at the top) into OUT_DIR.
local seeds_dir
if mode == "seeds" then
  local keys_file
  keys_file, seeds_dir, plot = data, keys_text, names_text == "plot"
  local f = assert(io.open(keys_file, "rb"))
  keys_text = f:read("a")
  f:close()
  names_text, data = table.concat(listed(), "\n"), ""
end

local names = {}
for n in names_text:gmatch("[^\n]+") do names[#names + 1] = n end
local exact = {}
for i, n in ipairs(names) do exact[n] = i end
local keys = {}
for k in keys_text:gmatch("[^\n]+") do keys[#keys + 1] = k end

local pos = 1
local function byte()
  if pos > #data then return nil end
  pos = pos + 1
  return data:byte(pos - 1)
end
local function take(n)
  local s = data:sub(pos, pos + n - 1)
  pos = pos + n
  return s
end

-- Strings made from the fuzzer's bytes never hold '/': every path stays inside the directory the
-- harness made (the harness may run as root; nothing outside that directory is written).
local function safe(s) return (s:gsub("/", "_")) end

-- Training: any model:fit (also through the notebook helpers) gets at most 2 epochs, 1 when the
-- call does not say; the datasets here have at most 12 images, so a call stays fast.
local model_methods = methods_of(registry["fmnist.Model"])
local real_fit = model_methods.fit
model_methods.fit = function(self, ds, opts, ...)
  if opts == nil then
    opts = { epochs = 1 }
  elseif type(opts) == "table" then
    local e = rawget(opts, "epochs")
    local n = tonumber(e)
    if e == nil then
      rawset(opts, "epochs", 1)
    elseif n and n > 2 then
      rawset(opts, "epochs", 2)
    end
  end
  return real_fit(self, ds, opts, ...)
end

-- Objects made at most once per input, on first use, so that arguments can alias each other.
local cache = {}
local function once(key, make)
  return function()
    if cache[key] == nil then
      local ok, v = pcall(make)
      cache[key] = ok and v or false
    end
    return cache[key] or nil
  end
end

local slots, next_slot = {}, 0
local value

local LENGTHS = { 2 ^ 62, -1, 2 ^ 31, 0 / 0, "12", 1e300, 3, math.maxinteger, math.mininteger, 0 }

-- A table whose metamethods (picked by the bits of a byte) run the collector and return hostile
-- values: what the binding must survive when it reads a table it did not make.
local function hostile_table(depth)
  local flags = byte() or 0
  local t = { value(depth + 1), value(depth + 1) }
  local mt = {}
  if flags & 1 ~= 0 then
    local v = value(depth + 1)
    -- Answers every name and the integers 1..4 only: a table that answers every index would be
    -- an endless sequence, which ipairs never finishes in any code.
    mt.__index = function(_, k)
      collectgarbage()
      if math.type(k) == "integer" and (k < 1 or k > 4) then return nil end
      return v
    end
  end
  if flags & 2 ~= 0 then
    local n = LENGTHS[(byte() or 0) % #LENGTHS + 1]
    mt.__len = function()
      collectgarbage()
      return n
    end
  end
  if flags & 4 ~= 0 then mt.__gc = function() collectgarbage() end end
  if flags & 8 ~= 0 then
    mt.__newindex = function(tt, k, v)
      collectgarbage()
      rawset(tt, k, v)
    end
  end
  if flags & 16 ~= 0 then
    mt.__pairs = function()
      collectgarbage()
      return function() error("hostile __pairs") end, t, nil
    end
  end
  if flags & 32 ~= 0 then mt.__tostring = function() return {} end end
  if flags & 64 ~= 0 then
    mt.__call = function()
      collectgarbage()
      return value(depth + 1)
    end
  end
  if flags & 128 ~= 0 then
    mt.__close = function() collectgarbage() end
    mt.__metatable = "locked"
    mt.__name = "%s%n"
  end
  return setmetatable(t, mt)
end

local TINY_CNN = { layers = { { "conv2d", 2, 3 }, "relu", { "maxpool", 2 }, { "dense", 10 } } }

local P, LABEL = {}, {} -- LABEL: palette index of some entries, for the seeds
local function const(v, label)
  P[#P + 1] = function() return v end
  if label then LABEL[label] = #P end
end
local function make(f, label)
  P[#P + 1] = f
  if label then LABEL[label] = #P end
end

for _, v in ipairs({ true, false, 0, 1, 2, 3, -1, 0.5, -0.5, 2 ^ 31, 2147483647, 2 ^ 32, 2 ^ 53,
  2 ^ 63, math.mininteger, math.maxinteger, 0 / 0, 1 / 0, -1 / 0, 1e-310, 9, 10, 28, 255, 256,
  784, -2 ^ 31, 1e9 }) do
  const(v, tostring(v))
end
const(nil)
for _, s in ipairs({ "", "|cmd", "%s%n%s%n", "%d%x%p%c", "a\nb", "a\0b", "'\";`$(touch INJECTED)`",
  "$(touch INJECTED)", "; touch INJECTED", "`touch INJECTED`", "'; system('touch INJECTED'); '",
  "@x", "\\", "..", ".", "x.png", "x.svg", "x.txt", "x.pdf", "x.npy", "x.fmn", "x.csv", "x.csv.gz",
  "x-images-idx3-ubyte", "no-such-dir/x.png", "train", "test", "same", "valid", "-1", "0x10",
  "1e9", " 12 ", "nan", "inf", "\xff\xfe\x80", "fx-images-idx3-ubyte", "fx-labels-idx1-ubyte",
  "fx.csv", "fx.npy", "fx.png", "fx.fmn", "train-images-idx3-ubyte" }) do
  const(s, "'" .. s)
end
local SIMPLE = #P -- the entries above make no tables and read no bytes
make(function() return ("A"):rep(70000) end)
make(function() return ("%s"):rep(5000) end)
-- numbers and strings from the fuzzer's bytes
make(function() return #data >= pos + 7 and string.unpack("<i8", take(8)) or nil end)
make(function() return #data >= pos + 7 and string.unpack("<d", take(8)) or nil end)
make(function() return (byte() or 0) - 128 end)
make(function() return ((byte() or 0) - 128) / 16 end)
make(function() return safe(take(byte() or 0)) end)
-- option names, gathered from the binding's sources at build time
make(function()
  local i = ((byte() or 0) << 8 | (byte() or 0)) % math.max(#keys, 1) + 1
  return keys[i]
end)
-- tables
const({})
make(function() return {} end)
make(function()
  local t = {}
  for i = 1, (byte() or 0) % 6 do t[i] = value(1) end
  return t
end, "list")
make(function()
  local t = {}
  for _ = 1, (byte() or 0) % 5 do
    local i = ((byte() or 0) << 8 | (byte() or 0)) % math.max(#keys, 1) + 1
    local k = keys[i]
    if k then t[k] = value(1) end
  end
  return t
end, "options")
make(function() return { { {} }, { 1, { 2 } } } end)
make(function()
  local t = {}
  t[1] = t
  t.self = t
  return t
end)
make(function() return { 1, nil, 3, n = 3 } end)
make(function() return { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 } end)
make(function() return hostile_table(1) end, "hostile")
make(function() return hostile_table(1) end)
-- tensors, datasets and models, also kept by class so that a method call can get a receiver of
-- its own class (see below)
local OF_CLASS = { Tensor = {}, Dataset = {}, Model = {} }
local function object(class, f, label)
  make(f, label)
  table.insert(OF_CLASS[class], f)
end
for _, shape in ipairs({ { 0 }, { 1 }, { 3 }, { 2, 3 }, { 1, 784 }, { 28, 28 }, { 4, 784 },
  { 2, 2, 2, 2 }, { 0, 784 }, { 10, 10 }, { 784 }, { 1, 28, 28, 1 } }) do
  local name = table.concat(shape, "x")
  object("Tensor", once(name, function() return fm.rand(table.unpack(shape)) end), "t" .. name)
end
object("Tensor", once("nan", function() return fm.full(3, 0 / 0) end))
object("Tensor", once("labels", function() return fm.tensor { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 } end))
object("Tensor", once("matrix", function() return fm.tensor { { 1, 2 }, { 3, 4 } } end),
  "matrix")
object("Tensor", once("arange", function() return fm.arange(12) end))
object("Dataset", once("train", function() return fm.load("train") end), "train")
object("Dataset", once("csv", function() return fm.load("fx.csv") end))
object("Dataset", once("sub", function() return fm.load("train"):subset(2, 5) end))
object("Model", once("logreg", function() return fm.LogReg { seed = 1 } end))
object("Model", once("mlp", function() return fm.MLP { hidden = { 4 }, seed = 1 } end))
object("Model", once("cnn", function() return fm.CNN(TINY_CNN) end), "cnn")
object("Model", once("loaded", function() return fm.load_model("fx.fmn") end))
make(once("storage", function() return debug.getuservalue(fm.load("test"), 1) end))
make(once("result", function() return fm.load_model("fx.fmn"):evaluate(fm.load("test")) end))
-- functions (callbacks)
const(function() error("callback error") end)
const(function()
  collectgarbage()
  return false
end)
const(function() return nil end)
const(function() return 2 ^ 53 end)
const(function() coroutine.yield() end)
-- other values
make(function() return coroutine.create(function() end) end)
const(io.stdout)
make(function() return registry["fmnist.gnuplot.process"] end)
make(function() return fm end)
-- an earlier call's result
make(function() return slots[(byte() or 0) % 8] end)
make(function() return slots[(byte() or 0) % 8] end)

function value(depth)
  local b = byte()
  if b == nil then return nil end
  local i = b % #P + 1
  if depth > 3 and i > SIMPLE then return nil end -- no deeper nesting
  return P[i](depth)
end

-- ---- seeds ----

if seeds_dir then
  local key_index = {}
  for i, k in ipairs(keys) do key_index[k] = i end
  local char = string.char
  local function v(label) return char(assert(LABEL[label], label) - 1) end
  local function str(s) return v("'" .. s) end
  local function list(items) return v("list") .. char(#items) .. table.concat(items) end
  local function opts(fields)
    local out = { v("options"), char(#fields) }
    for _, kv in ipairs(fields) do
      local i = assert(key_index[kv[1]], kv[1]) - 1
      out[#out + 1] = char(i >> 8, i & 255) .. kv[2]
    end
    return table.concat(out)
  end
  -- A table {1, 2} whose __len runs the collector and answers 2^62.
  local hostile = v("hostile") .. char(2) .. v("1") .. v("2") .. char(0)
  local variants = {
    {},
    { v("2"), v("3") },
    { v("t4x784"), opts { { "labels", list { str("%s%n%s%n"), str("|cmd") } },
      { "title", str("%s%n%s%n") } } },
    { v("train"), hostile },
    { v("cnn"), v("train"), opts { { "epochs", v("1") } } },
    { v("t28x28"), opts { { "file", str("x.png") }, { "labels", list { str("%s%n%s%n") } } } },
    { list { v("2"), v("3") }, opts { { "labels", list { str("%s%n%s%n"), str("|cmd") } } } },
    { v("matrix"), opts { { "labels", list { str("%d%x%p%c"), str("`touch INJECTED`") } } } },
  }
  -- Variants whose first argument is an object: for a method, they go without the receiver the
  -- driver would add (bit 7 of the count), the others get one (byte 5 of its class's list).
  local object_first = { [3] = true, [4] = true, [5] = true, [6] = true, [8] = true }
  for _, name in ipairs(names) do
    for k, args in ipairs(variants) do
      local count, receiver = char(#args), ""
      if name:match("^%u[%w_]*:") then
        if object_first[k] then
          count = char(0x80 | #args)
        else
          receiver = char(5)
        end
      end
      local seed = char(0, #name) .. name .. count .. receiver .. table.concat(args)
      local file = assert(io.open(("%s/%s-%d"):format(seeds_dir, name:gsub("[^%w_]", "_"), k),
        "wb"))
      file:write(seed)
      file:close()
    end
  end
  return ""
end

-- ---- run: the calls ----

-- FUZZ_TRACE=1 prints each call, its arguments and its outcome on stderr (to read a saved input).
local TRACE = os.getenv("FUZZ_TRACE")
local function describe(v)
  if type(v) == "string" then return ("%q"):format(#v > 60 and v:sub(1, 60) .. "..." or v) end
  if type(v) == "userdata" then
    local ok, s = pcall(tostring, v)
    return ok and s:gsub("\n.*", " ..."):sub(1, 80) or type(v)
  end
  if type(v) == "table" then
    local mt = getmetatable(v)
    local parts = {}
    for k, x in next, v do
      if #parts > 6 then break end
      parts[#parts + 1] = tostring(k) .. "=" .. (type(x) == "table" and "{...}" or tostring(x))
    end
    return "{" .. table.concat(parts, ", ") .. "}" .. (mt and " with metatable" or "")
  end
  local ok, s = pcall(tostring, v)
  return ok and s or type(v)
end
local function trace_call(what, args, n)
  local parts = {}
  for i = 1, n do parts[i] = describe(args[i]) end
  io.stderr:write(what, "(", table.concat(parts, ", "), ")\n")
end

local function fnv(s)
  local h = 2166136261
  for i = 1, #s do h = ((h ~ s:byte(i)) * 16777619) & 0xffffffff end
  return h
end

local function pick_name()
  local op = byte()
  if op == nil then return nil end
  if op == 0 then
    local s = take(byte() or 0)
    return exact[s] and s or names[fnv(s) % #names + 1]
  elseif op < 0xE0 then
    return names[(op << 8 | (byte() or 0)) % #names + 1]
  end
  return op
end

local function callables_of(v)
  local t = type(v) == "table" and v or nil
  if type(v) == "userdata" then
    local mt = getmetatable(v)
    t = type(mt) == "table" and methods_of(mt) or nil
  end
  if not t then return {} end
  local fns = {}
  for _, k in ipairs(sorted_keys(t)) do
    if type(rawget(t, k)) == "function" then fns[#fns + 1] = rawget(t, k) end
  end
  return fns
end

local function check_after(what, ok, err)
  local f = io.open("INJECTED", "rb")
  if f then
    f:close()
    fuzz_finding(what .. ": a string ran as a command (INJECTED was created)")
  end
  if plot and not ok and type(err) == "string" then
    if err:find("gnuplot exited while drawing", 1, true) then
      fuzz_finding(what .. ": gnuplot died: " .. err)
    elseif err:find("did not finish the figure", 1, true) then
      fuzz_finding(what .. ": gnuplot hung: " .. err)
    elseif what:match("^fm%.plot%.") and err:match("^plot%.%w+: gnuplot: ")
      and not err:find("all points %a+ value undefined") then
      -- fm.plot checks its arguments itself and passes user text only quoted: gnuplot refusing
      -- what it was sent means some text reached it as more than text (fm.gnuplot.run, which
      -- takes raw commands, may fail this way). Data that is all NaN is gnuplot's to report.
      fuzz_finding(what .. ": gnuplot rejected the figure's commands: " .. err)
    end
  end
end

if #names == 0 then return "" end
for _ = 1, 12 do
  local sel = pick_name()
  if sel == nil then break end
  local fn, what, self
  if type(sel) == "string" then
    fn, what = resolve(sel), sel
  elseif sel >= 0xF0 then
    collectgarbage()
  elseif sel >= 0xE8 then
    fn, what = slots[sel - 0xE8], "slot " .. (sel - 0xE8)
  else
    local v = slots[sel - 0xE0]
    local fns = callables_of(v)
    if #fns > 0 then
      fn, what, self = fns[(byte() or 0) % #fns + 1], "method of slot " .. (sel - 0xE0), v
    end
  end
  if fn ~= nil then
    local count = byte() or 0
    local args, n = {}, (count & 0x7f) % 7
    -- A method (Class:name) gets a receiver of its class unless bit 7 of the count is set.
    local class = type(sel) == "string" and sel:match("^(%u[%w_]*):")
    if self == nil and class and OF_CLASS[class] and count < 0x80 then
      local list = OF_CLASS[class]
      self = list[(byte() or 0) % #list + 1]()
    end
    if self ~= nil then args[1], n = self, n + 1 end
    for i = #args + 1, n do args[i] = value(1) end
    if TRACE then trace_call(what, args, n) end
    local r = table.pack(pcall(fn, table.unpack(args, 1, n)))
    if TRACE then io.stderr:write("  -> ", tostring(r[1]), " ", describe(r[2]), "\n") end
    check_after(what, r[1], r[2])
    if r[1] then
      for i = 2, math.min(r.n, 4) do
        slots[next_slot] = r[i]
        next_slot = (next_slot + 1) % 8
      end
    end
  end
end
return ""
