-- test_json.lua: fmnist.json — what it writes, what it reads back, and what it refuses.
local T = require "testlib"
local fm = require "fmnist"
local json = require "fmnist.json"

T.ok(fm.json == json, "fm.json is the module")

-- ---- encoding ----
T.eq(json.encode(nil), "null", "nil is null")
T.eq(json.encode(json.null), "null", "json.null is null")
T.eq(json.encode(true) .. json.encode(false), "truefalse", "booleans")
T.eq(json.encode(42), "42", "an integer")
T.eq(json.encode(-7), "-7", "a negative integer")
T.eq(json.encode(math.mininteger), "-9223372036854775808", "the smallest integer")
T.eq(json.encode(1.0), "1.0", "a whole float keeps a '.'")
T.eq(json.encode(-0.0), "-0.0", "negative zero keeps its sign")
T.eq(json.encode(0.1), "0.1", "the shortest digits that read back")
T.eq(json.encode(1 / 3), "0.3333333333333333", "17 significant digits only when needed")
T.eq(json.encode(1e300), "1e+300", "an exponent")
T.eq(json.encode(2 ^ 53), "9007199254740992.0", "a large whole float stays a float")
T.eq(json.encode("a\"b\\c/d"), '"a\\"b\\\\c/d"', "quote and backslash escaped, slash not")
T.eq(json.encode("\b\f\n\r\t"), '"\\b\\f\\n\\r\\t"', "short escapes")
T.eq(json.encode("\0\1\31\127"), '"\\u0000\\u0001\\u001f\\u007f"', "every other control character as \\u")
T.eq(json.encode("é€😀"), '"é€😀"', "UTF-8 passes through")
T.eq(json.encode({}), "[]", "the empty table is an empty array")
T.eq(json.encode({ 1, 2, { 3 } }), "[1,2,[3]]", "arrays")
T.eq(json.encode({ b = 1, a = { c = true }, ["x y"] = "z" }), '{"a":{"c":true},"b":1,"x y":"z"}',
  "objects with sorted keys")
T.eq(json.encode({ 1, json.null, 3 }), "[1,null,3]", "null inside an array")

-- every control character of the first 128 code points is escaped, nothing else
do
  local all = {}
  for b = 0, 127 do all[#all + 1] = string.char(b) end
  local text = json.encode(table.concat(all))
  local raw_controls = text:find("[\0-\31\127]")
  T.ok(raw_controls == nil, "no raw control character in the output")
  T.eq(json.decode(text), table.concat(all), "all of ASCII reads back")
end

-- refusals, naming the place
T.err("$: NaN is not a JSON number", json.encode, 0 / 0)
T.err("$.a[2]: Infinity is not a JSON number", json.encode, { a = { 1, math.huge } })
T.err("-Infinity", json.encode, -math.huge)
T.eq(json.encode({ 0 / 0, math.huge, -math.huge }, { nonfinite = "null" }), "[null,null,null]",
  "nonfinite = null")
T.eq(json.encode({ 0 / 0, math.huge, -math.huge }, { nonfinite = "literal" }),
  "[NaN,Infinity,-Infinity]", "nonfinite = literal")
T.err("option 'nonfinite' must be", json.encode, 1, { nonfinite = "zero" })
T.err("unknown option 'indent' (known: nonfinite)", json.encode, 1, { indent = 2 })
T.err("$.f: a function cannot be written", json.encode, { f = print })
T.err("$[1]: a userdata cannot be written", json.encode, { io.stdout })
T.err("$: the table mixes array items and named keys", json.encode, { 1, 2, x = 3 })
T.err("$: the array has holes (2 items, largest index 3)", json.encode, { 1, nil, 3 })
T.err("is neither an array index nor a string", json.encode, { [1.5] = 1 })
T.err("is neither an array index nor a string", json.encode, { [0] = 1 })
T.err("$.s: the string is not valid UTF-8 (byte 2)", json.encode, { s = "a\255" })
T.err("not valid UTF-8", json.encode, "\237\160\128") -- an encoded surrogate
do
  local cyc = {}
  cyc.self = cyc
  T.err("$.self: the table contains itself", json.encode, cyc)
  local shared = { 1 }
  T.eq(json.encode({ shared, shared }), "[[1],[1]]", "a table twice (not a cycle) is fine")
  local deep = {}
  local t = deep
  for _ = 1, 300 do t[1] = {} t = t[1] end
  T.err("nested deeper than 200", json.encode, deep)
end
-- metatables play no part
do
  local calls = 0
  local t = setmetatable({ a = 1 }, {
    __index = function() calls = calls + 1 return 9 end,
    __pairs = function() calls = calls + 1 return next, {}, nil end,
    __len = function() calls = calls + 1 return 5 end,
  })
  T.eq(json.encode(t), '{"a":1}', "a table with metamethods is read raw")
  T.eq(calls, 0, "no metamethod ran")
end

-- ---- decoding ----
T.eq(json.decode(" [1, 2.5, -0, 1e2, 1E-2, true, false, \"x\"] "), { 1, 2.5, 0, 100.0, 0.01, true, false, "x" },
  "values of every kind")
T.eq(math.type(json.decode("1")), "integer", "no fraction: an integer")
T.eq(math.type(json.decode("1.0")), "float", "a fraction: a float")
T.eq(math.type(json.decode("1e2")), "float", "an exponent: a float")
T.eq(json.decode("9223372036854775807"), math.maxinteger, "the largest integer")
T.eq(math.type(json.decode("92233720368547758070")), "float", "a larger integer becomes a float")
T.ok(rawequal(json.decode("null"), json.null), "null is json.null")
T.eq(json.decode('"\\u00e9\\ud83d\\ude00\\u0000\\/"'), "é😀\0/", "\\u escapes, surrogate pairs, \\u0000, \\/")
T.eq(json.decode('{"a":{"b":[]}}'), { a = { b = {} } }, "nested objects")
do
  local v = json.decode("[1,null,3]")
  T.ok(v[1] == 1 and rawequal(v[2], json.null) and v[3] == 3, "arrays keep the place of a null")
end
T.err("line 2 column 3", json.decode, "[1,\n  x]")
T.err("a trailing comma", json.decode, "[1,2,]")
T.err("a trailing comma", json.decode, '{"a":1,}')
T.err("a number has a leading zero", json.decode, "012")
T.err("unexpected '+'", json.decode, "+1")
T.err("a '.' without digits after it", json.decode, "1.")
T.err("an exponent without digits", json.decode, "1e")
T.err("unexpected '.'", json.decode, ".5")
T.err("the number 1e999 is too large", json.decode, "1e999")
T.err("a control character (byte 10) inside a string", json.decode, '"a\nb"')
T.err("an unknown escape '\\x'", json.decode, '"\\x41"')
T.err("a lone surrogate \\ud800", json.decode, '"\\ud800"')
T.err("a lone surrogate \\udc00", json.decode, '"\\udc00"')
T.err("\\u needs four hex digits", json.decode, '"\\u12"')
T.err("invalid UTF-8", json.decode, '"\255"')
T.err("the key \"a\" appears twice", json.decode, '{"a":1,"a":2}')
T.err("expected a key in quotes", json.decode, "{a:1}")
T.err("unexpected '''", json.decode, "'a'")
T.err("unexpected '/'", json.decode, "// comment\n1")
T.err("text after the value", json.decode, "1 2")
T.err("text after the value", json.decode, "truex")
T.err("unexpected end of text", json.decode, "")
T.err("unexpected end of text", json.decode, "[")
T.err("the string is not closed", json.decode, '"abc')
T.err("nested deeper than 200", json.decode, string.rep("[", 300) .. string.rep("]", 300))
T.err("text must be a string, got nil", json.decode, nil)
T.err("unexpected 'N'", json.decode, "NaN")
do
  local v = json.decode("[NaN, Infinity, -Infinity]", { nonfinite = true })
  T.ok(v[1] ~= v[1] and v[2] == math.huge and v[3] == -math.huge, "nonfinite = true reads NaN and the infinities")
end

-- ---- round trips ----
do
  local values = {
    0, -1, math.maxinteger, math.mininteger, 0.1, -2.5e-300, 1 / 3, 2 ^ 60, 123456789.125,
    "", "plain", "tab\tnewline\n\0nul", "é", { 1, 2, 3 }, { a = { b = { c = "d" } } },
    { hidden = { 256, 128 }, lr = 1e-3, name = "mlp", ok = true, none = json.null },
  }
  local all_same = true
  for _, v in ipairs(values) do
    local text = json.encode(v)
    local back = json.decode(text)
    local again = json.encode(back)
    if again ~= text then
      all_same = false
      print("# " .. text .. " -> " .. again)
    end
    if type(v) == "number" and (back ~= v or math.type(back) ~= math.type(v)) then
      all_same = false
      print("# number " .. tostring(v) .. " came back as " .. tostring(back))
    end
  end
  T.ok(all_same, "decode(encode(v)) encodes to the same text and keeps numbers exactly")
  -- random floats of every magnitude come back bit for bit
  fm.seed(3)
  local r = fm.randn(2000):totable()
  local exact = true
  for i, x in ipairs(r) do
    local v = x * 10 ^ ((i % 40) - 20)
    if json.decode(json.encode(v)) ~= v then exact = false end
  end
  T.ok(exact, "2000 floats from 1e-20 to 1e19 read back exactly")
end

T.done()
