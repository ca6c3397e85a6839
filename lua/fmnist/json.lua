-- fmnist.json (fm.json): a strict JSON encoder and decoder (RFC 8259), for result files that other
-- programs (jq, pandas, a spreadsheet) read and that this project reads back.
--
--   json.encode(value [, {nonfinite = "error" | "null" | "literal"}]) -> string, one line
--   json.decode(text [, {nonfinite = true}])                            -> value
--   json.null                                                            the JSON null
--
-- Lua to JSON:
--   nil and json.null -> null; true/false; strings must be valid UTF-8 and come out with '"', '\'
--   and every control character (U+0000-U+001F and U+007F) escaped; integers (math.type
--   "integer") as integers; floats with the fewest digits that read back as the same double, and
--   always with a '.' or an exponent (1.0, not 1), so that a float stays a float.
--   A table whose keys are exactly 1..n (n >= 1) is an array; a table whose keys are all strings is
--   an object, its keys written in sorted order (the same table always gives the same text); the
--   empty table is the empty array []. Anything else (mixed or sparse keys, functions, userdata,
--   cycles, nesting deeper than 200) is an error naming the place, such as $.params.lr.
--   Tables are read raw: their metatables (__index, __pairs, __len, ...) play no part.
--   NaN and the infinities are not JSON: by default they are an error; nonfinite = "null" writes
--   null, nonfinite = "literal" writes NaN, Infinity and -Infinity (what Python's json writes;
--   only json.decode with nonfinite = true reads them back).
--
-- JSON to Lua:
--   objects and arrays become plain tables, null becomes json.null (so that arrays keep their
--   positions), numbers with a fraction or an exponent become floats and the others integers
--   (an integer too large for 64 bits becomes a float). The whole text must be one value with
--   only white space around it. Refused, with the line and column: comments, trailing commas,
--   single quotes, leading zeros or '+', raw control characters in strings, invalid UTF-8, lone
--   surrogates in \u escapes, duplicate keys, nesting deeper than 200.
--
-- decode(encode(v)) equals v for every value encode accepts (NaN aside, with "literal"), and
-- encode(decode(encode(v))) == encode(v).
local M = {}

local MAX_DEPTH = 200

-- The JSON null: a unique, read-only value.
M.null = setmetatable({}, {
  __tostring = function() return "json.null" end,
  __newindex = function() error("json.null cannot be changed", 2) end,
  __metatable = "json.null",
})

local function fail(fname, fmt, ...)
  error(fname .. ": " .. string.format(fmt, ...), 0)
end

-- ---- encoding ----

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
                  ["\r"] = "\\r", ["\t"] = "\\t" }
for byte = 0, 31 do
  local c = string.char(byte)
  ESCAPES[c] = ESCAPES[c] or string.format("\\u%04x", byte)
end
ESCAPES["\127"] = "\\u007f"

local function encode_string(s, path)
  if not utf8.len(s) then
    local _, bad = utf8.len(s)
    fail("json.encode", "%s: the string is not valid UTF-8 (byte %d)", path, bad)
  end
  -- an explicit class: %c would follow the locale (bytes 128-159 are controls in Latin-1)
  return '"' .. s:gsub('[\0-\31\127"\\]', ESCAPES) .. '"'
end

-- The shortest of %.15g, %.16g, %.17g that reads back as the same double; %.17g always does.
local function encode_float(x)
  local s
  for digits = 15, 17 do
    s = string.format("%." .. digits .. "g", x)
    if tonumber(s) == x then break end
  end
  if s:find("^%-?%d+$") then s = s .. ".0" end
  return s
end

local NONFINITE = { error = true, null = true, literal = true }

local function encode_number(x, path, nonfinite)
  if math.type(x) == "integer" then return string.format("%d", x) end
  if x == x and x ~= math.huge and x ~= -math.huge then return encode_float(x) end
  local what = x ~= x and "NaN" or (x > 0 and "Infinity" or "-Infinity")
  if nonfinite == "null" then return "null" end
  if nonfinite == "literal" then return what end
  fail("json.encode", "%s: %s is not a JSON number (nonfinite = \"null\" or \"literal\" writes it)",
    path, what)
end

local IDENT = "^[%a_][%w_]*$"

local function key_path(path, k)
  if type(k) == "string" and k:find(IDENT) then return path .. "." .. k end
  return path .. "[" .. (type(k) == "string" and string.format("%q", k) or tostring(k)) .. "]"
end

-- Whether t is an array (keys exactly 1..n), an object (string keys), or neither; also the
-- object's sorted keys or the array's length.
local function table_shape(t, path)
  local n, strings, others, maxint = 0, {}, nil, 0
  for k in next, t do
    n = n + 1
    if type(k) == "string" then
      strings[#strings + 1] = k
    elseif math.type(k) == "integer" and k >= 1 then
      if k > maxint then maxint = k end
    else
      others = others or k
    end
  end
  if n == 0 then return "array", 0 end
  if others ~= nil then
    fail("json.encode", "%s: a key of type %s (%s) is neither an array index nor a string", path,
      type(others), tostring(others))
  end
  if #strings == n then
    table.sort(strings)
    return "object", strings
  end
  if #strings > 0 then
    fail("json.encode", "%s: the table mixes array items and named keys (such as %q)", path,
      strings[1])
  end
  if maxint ~= n then
    fail("json.encode", "%s: the array has holes (%d items, largest index %d)", path, n, maxint)
  end
  return "array", n
end

local encode_value

local function encode_table(t, path, state, depth)
  if state.open[t] then fail("json.encode", "%s: the table contains itself", path) end
  if depth > MAX_DEPTH then fail("json.encode", "%s: nested deeper than %d", path, MAX_DEPTH) end
  state.open[t] = true
  local kind, shape = table_shape(t, path)
  local parts = {}
  if kind == "array" then
    for i = 1, shape do
      parts[i] = encode_value(rawget(t, i), path .. "[" .. i .. "]", state, depth + 1)
    end
    state.open[t] = nil
    return "[" .. table.concat(parts, ",") .. "]"
  end
  for i, k in ipairs(shape) do
    parts[i] = encode_string(k, path) .. ":" ..
        encode_value(rawget(t, k), key_path(path, k), state, depth + 1)
  end
  state.open[t] = nil
  return "{" .. table.concat(parts, ",") .. "}"
end

function encode_value(v, path, state, depth)
  local tv = type(v)
  if v == nil or rawequal(v, M.null) then return "null" end
  if tv == "boolean" then return v and "true" or "false" end
  if tv == "number" then return encode_number(v, path, state.nonfinite) end
  if tv == "string" then return encode_string(v, path) end
  if tv == "table" then return encode_table(v, path, state, depth) end
  fail("json.encode", "%s: a %s cannot be written as JSON", path, tv)
end

local check_opts = require("fmnist.check").options

function M.encode(value, opts)
  opts = check_opts("json.encode", opts, { nonfinite = true })
  local nonfinite = rawget(opts, "nonfinite") or "error"
  if not NONFINITE[nonfinite] then
    fail("json.encode", "option 'nonfinite' must be \"error\", \"null\" or \"literal\", not %s",
      tostring(nonfinite))
  end
  return encode_value(value, "$", { open = {}, nonfinite = nonfinite }, 0)
end

-- ---- decoding ----

-- The decoder keeps the text and the options in a state table; positions are byte offsets.
local function where(st, pos)
  local line, col = 1, pos
  for nl in st.text:sub(1, pos - 1):gmatch("()\n") do
    line = line + 1
    col = pos - nl
  end
  return string.format("line %d column %d", line, col)
end

local function dfail(st, pos, fmt, ...)
  fail("json.decode", "%s at %s", string.format(fmt, ...), where(st, pos))
end

local function skip_space(st, pos)
  return st.text:find("[^ \t\r\n]", pos) or #st.text + 1
end

local decode_value

local function decode_number(st, pos)
  local text = st.text
  local s, e = text:find("^-?%d+", pos)
  if not s then dfail(st, pos, "expected a value") end
  local int_part = text:sub(s, e):gsub("^-", "")
  if #int_part > 1 and int_part:sub(1, 1) == "0" then dfail(st, pos, "a number has a leading zero") end
  local is_float = false
  local fs, fe = text:find("^%.%d+", e + 1)
  if text:sub(e + 1, e + 1) == "." and not fs then dfail(st, e + 1, "a '.' without digits after it") end
  if fs then e, is_float = fe, true end
  local xs, xe = text:find("^[eE][+-]?%d+", e + 1)
  if text:find("^[eE]", e + 1) and not xs then dfail(st, e + 1, "an exponent without digits") end
  if xs then e, is_float = xe, true end
  local token = text:sub(pos, e)
  local v = tonumber(token)
  if is_float then v = v + 0.0 end
  if math.type(v) == "float" and v ~= v or v == math.huge or v == -math.huge then
    dfail(st, pos, "the number %s is too large", token)
  end
  return v, e + 1
end

-- Reads four hex digits of a \u escape at pos.
local function hex4(st, pos)
  local h = st.text:match("^%x%x%x%x", pos)
  if not h then dfail(st, pos - 2, "\\u needs four hex digits") end
  return tonumber(h, 16)
end

local SIMPLE = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n",
                 r = "\r", t = "\t" }

local function decode_string(st, pos)
  local text, parts = st.text, {}
  local i = pos + 1
  while true do
    local j = text:find('[\0-\31"\\]', i)
    if not j then dfail(st, pos, "the string is not closed") end
    parts[#parts + 1] = text:sub(i, j - 1)
    local c = text:sub(j, j)
    if c == '"' then return table.concat(parts), j + 1 end
    if c ~= "\\" then dfail(st, j, "a control character (byte %d) inside a string", c:byte()) end
    local esc = text:sub(j + 1, j + 1)
    if SIMPLE[esc] then
      parts[#parts + 1] = SIMPLE[esc]
      i = j + 2
    elseif esc == "u" then
      local code = hex4(st, j + 2)
      i = j + 6
      if code >= 0xD800 and code <= 0xDBFF then
        if text:sub(i, i + 1) ~= "\\u" then dfail(st, j, "a lone surrogate \\u%04x", code) end
        local low = hex4(st, i + 2)
        if low < 0xDC00 or low > 0xDFFF then dfail(st, j, "a lone surrogate \\u%04x", code) end
        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
        i = i + 6
      elseif code >= 0xDC00 and code <= 0xDFFF then
        dfail(st, j, "a lone surrogate \\u%04x", code)
      end
      parts[#parts + 1] = utf8.char(code)
    else
      dfail(st, j, "an unknown escape '\\%s'", esc == "" and "<end>" or esc)
    end
  end
end

local LITERALS = { { "true", true }, { "false", false }, { "null", M.null } }
local NONFINITE_LITERALS = { { "NaN", 0 / 0 }, { "Infinity", math.huge }, { "-Infinity", -math.huge } }

local function decode_array(st, pos, depth)
  local out, n = {}, 0
  pos = skip_space(st, pos + 1)
  if st.text:sub(pos, pos) == "]" then return out, pos + 1 end
  while true do
    local v
    v, pos = decode_value(st, pos, depth + 1)
    n = n + 1
    out[n] = v
    pos = skip_space(st, pos)
    local c = st.text:sub(pos, pos)
    if c == "]" then return out, pos + 1 end
    if c ~= "," then dfail(st, pos, "expected ',' or ']' in an array") end
    pos = skip_space(st, pos + 1)
    if st.text:sub(pos, pos) == "]" then dfail(st, pos, "a trailing comma") end
  end
end

local function decode_object(st, pos, depth)
  local out = {}
  pos = skip_space(st, pos + 1)
  if st.text:sub(pos, pos) == "}" then return out, pos + 1 end
  while true do
    if st.text:sub(pos, pos) ~= '"' then dfail(st, pos, "expected a key in quotes") end
    local keypos = pos
    local k
    k, pos = decode_string(st, pos)
    if out[k] ~= nil then dfail(st, keypos, "the key %q appears twice", k) end
    pos = skip_space(st, pos)
    if st.text:sub(pos, pos) ~= ":" then dfail(st, pos, "expected ':' after a key") end
    local v
    v, pos = decode_value(st, skip_space(st, pos + 1), depth + 1)
    out[k] = v
    pos = skip_space(st, pos)
    local c = st.text:sub(pos, pos)
    if c == "}" then return out, pos + 1 end
    if c ~= "," then dfail(st, pos, "expected ',' or '}' in an object") end
    pos = skip_space(st, pos + 1)
    if st.text:sub(pos, pos) == "}" then dfail(st, pos, "a trailing comma") end
  end
end

function decode_value(st, pos, depth)
  if depth > MAX_DEPTH then dfail(st, pos, "nested deeper than %d", MAX_DEPTH) end
  local c = st.text:sub(pos, pos)
  if c == "" then dfail(st, pos, "unexpected end of text") end
  if c == "{" then return decode_object(st, pos, depth) end
  if c == "[" then return decode_array(st, pos, depth) end
  if c == '"' then return decode_string(st, pos) end
  for _, lit in ipairs(LITERALS) do
    if st.text:sub(pos, pos + #lit[1] - 1) == lit[1] then return lit[2], pos + #lit[1] end
  end
  if st.nonfinite then
    for _, lit in ipairs(NONFINITE_LITERALS) do
      if st.text:sub(pos, pos + #lit[1] - 1) == lit[1] then return lit[2], pos + #lit[1] end
    end
  end
  if c == "-" or c:find("%d") then return decode_number(st, pos) end
  local b = c:byte()
  dfail(st, pos, "unexpected %s", (b > 32 and b < 127) and ("'" .. c .. "'") or ("byte " .. b))
end

function M.decode(text, opts)
  if type(text) ~= "string" then fail("json.decode", "text must be a string, got %s", type(text)) end
  opts = check_opts("json.decode", opts, { nonfinite = true })
  local nonfinite = rawget(opts, "nonfinite")
  if nonfinite ~= nil and type(nonfinite) ~= "boolean" then
    fail("json.decode", "option 'nonfinite' must be a boolean, got %s", type(nonfinite))
  end
  local st = { text = text, nonfinite = nonfinite }
  if not utf8.len(text) then
    local _, bad = utf8.len(text)
    dfail(st, bad, "invalid UTF-8")
  end
  local value, pos = decode_value(st, skip_space(st, 1), 0)
  pos = skip_space(st, pos)
  if pos <= #text then dfail(st, pos, "text after the value") end
  return value
end

return M
