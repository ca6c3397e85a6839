-- testlib.lua: the small TAP harness the Lua tests share.
--
--   local T = require "testlib"
--   T.ok(cond, name)            passes when cond is neither nil nor false
--   T.eq(a, b, name)            a == b; plain tables are compared element by element
--   T.near(a, b, tol, name)     |a - b| <= tol; numbers, or nested tables of numbers
--   T.err(text, f, ...)         f(...) must raise an error whose message contains text (plain find)
--   T.skip(name, reason)        prints "ok N - name # SKIP reason" (counted apart from passes)
--   T.tmpdir()                  a new empty directory, removed by T.done()
--   T.read(path) / T.write(path, data)   a whole file's bytes (nil if it cannot be read) / writes them
--   T.done()                    prints the plan "1..N" and exits with status 1 if anything failed
--
-- Each check prints "ok N - name" or "not ok N - name"; a failure adds "#   " lines saying what
-- was expected, what came, and where the check is. Checks return whether they passed.
local T = {}

local count, failed = 0, 0

-- Strings are quoted so that "" and " 1" are visible; tables are shown shallowly.
local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) == "table" and getmetatable(v) == nil then
    local parts = {}
    for i = 1, math.min(#v, 10) do parts[#parts + 1] = show(v[i]) end
    if #v > 10 then parts[#parts + 1] = "..." end
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  return tostring(v)
end

-- Where the test called the check: the first Lua frame outside this file (checks may be
-- tail calls, so a fixed stack level would not do).
local here = debug.getinfo(1, "S").source
local function where()
  for level = 2, 50 do
    local info = debug.getinfo(level, "Sl")
    if info == nil then break end
    if info.source ~= here and info.what ~= "C" then
      return info.short_src .. ":" .. info.currentline
    end
  end
  return "?"
end

local function report(pass, name, ...)
  count = count + 1
  name = name or "(unnamed)"
  if pass then
    print(string.format("ok %d - %s", count, name))
    return true
  end
  failed = failed + 1
  print(string.format("not ok %d - %s", count, name))
  print("#   at " .. where())
  for _, line in ipairs({...}) do print("#   " .. line) end
  return false
end

-- Deep equality for plain tables; anything else (userdata with __eq included) uses ==.
local function same(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  if getmetatable(a) or getmetatable(b) then return false end
  for k, v in pairs(a) do
    if not same(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

-- Returns nil when close, or a description of the first difference.
local function distance(a, b, tol, path)
  if type(a) == "table" and type(b) == "table" then
    if #a ~= #b then return string.format("%s: lengths %d and %d", path, #a, #b) end
    for i = 1, #a do
      local d = distance(a[i], b[i], tol, path .. "[" .. i .. "]")
      if d then return d end
    end
    return nil
  end
  if type(a) ~= "number" or type(b) ~= "number" then
    return string.format("%s: %s and %s are not both numbers", path, show(a), show(b))
  end
  -- written so that NaN on either side fails
  if not (math.abs(a - b) <= tol) then
    return string.format("%s: %.9g and %.9g differ by %.3g (tolerance %.3g)", path, a, b,
                         math.abs(a - b), tol)
  end
  return nil
end

function T.ok(cond, name)
  return report(cond ~= nil and cond ~= false, name, "expected true, got " .. show(cond))
end

function T.eq(a, b, name)
  return report(same(a, b), name, "got:      " .. show(a), "expected: " .. show(b))
end

function T.near(a, b, tol, name)
  local d = distance(a, b, tol, "value")
  return report(d == nil, name, d)
end

-- Returns the error message, so that a test can look at it further.
function T.err(text, f, ...)
  local name = "error mentions " .. show(text)
  local ok, msg = pcall(f, ...)
  if ok then return report(false, name, "expected an error, but the call succeeded") end
  msg = tostring(msg)
  report(msg:find(text, 1, true) ~= nil, name, "message: " .. show(msg))
  return msg
end

local tmpdirs = {}

function T.skip(name, reason)
  count = count + 1
  print(string.format("ok %d - %s # SKIP %s", count, name, reason))
end

function T.tmpdir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p '" .. dir .. "'"))
  tmpdirs[#tmpdirs + 1] = dir
  return dir
end

function T.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("a")
  f:close()
  return data
end

function T.write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  return path
end

function T.done()
  for _, dir in ipairs(tmpdirs) do os.execute("rm -rf '" .. dir .. "'") end
  print("1.." .. count)
  if failed > 0 then
    print(string.format("# %d of %d checks failed", failed, count))
    io.stdout:flush()
    os.exit(1)
  end
end

return T
