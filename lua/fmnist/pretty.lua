-- fmnist.pretty (fm.pretty): values written out for a person, as the REPL shows them.
--
--   pretty.show(v [, opts]) -> string
--
-- Tables are opened up, nested ones indented, short ones kept on one line; keys in a stable order
-- (the list part first, then names alphabetically); a table met again inside itself is marked
-- <cycle: ...> with the path where it was first shown; long lists and big tables are cut with a
-- count of what was left out. Functions show their name and signature when help knows them
-- (function fm.load(what [, opts]) -> Dataset), else where they were defined. Tensors, datasets
-- and models show through their own tostring (inside a table, their one-line form).
--
-- Numbers inside tables show seven significant digits (0.8123457); a number alone shows all.
--
-- opts: depth (levels of tables opened, default 4), items (entries of a list shown, 30), keys
-- (named entries of a table, 40), width (characters of a line, the terminal's or 96), lines
-- (lines in all, 60; 0 for no limit), quote (quote a string at the top level, default true;
-- strings inside tables are always quoted).
local M = {}

local DEFAULTS = { depth = 4, items = 30, keys = 40, width = 96, lines = 60, quote = true }

local function fail(fmt, ...) error("pretty.show: " .. fmt:format(...), 3) end

-- The options, checked: known keys only, whole numbers where numbers go.
local function options(opts)
  local o = {}
  for k, v in pairs(DEFAULTS) do o[k] = v end
  if opts == nil then return o end
  if type(opts) ~= "table" then fail("options must be a table, got %s", type(opts)) end
  for k, v in pairs(opts) do
    if DEFAULTS[k] == nil then
      local names = {}
      for name in pairs(DEFAULTS) do names[#names + 1] = name end
      table.sort(names)
      fail("unknown option '%s' (known: %s)", tostring(k), table.concat(names, ", "))
    end
    if type(DEFAULTS[k]) == "number" then
      if math.type(v) ~= "integer" or v < 0 then
        fail("option '%s' must be a whole number of at least 0, got %s", k, tostring(v))
      end
    elseif type(v) ~= "boolean" then
      fail("option '%s' must be a boolean, got %s", k, type(v))
    end
    o[k] = v
  end
  return o
end

-- A string as a Lua literal that reads back the same, on one line.
local ESCAPES = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESCAPES[c] or ("\\%03d"):format(c:byte())
  end) .. '"'
end
M.quote = quote

-- A float in seven digits that still reads as a float (1.0, not 1); nan and inf spelt one way.
local function short_float(v)
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" end
  if v == -math.huge then return "-inf" end
  local s = ("%.7g"):format(v)
  if not s:find("[%.e]") then s = s .. ".0" end
  return s
end

local function is_identifier(s)
  return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil and not ({
    ["and"] = 1, ["break"] = 1, ["do"] = 1, ["else"] = 1, ["elseif"] = 1, ["end"] = 1,
    ["false"] = 1, ["for"] = 1, ["function"] = 1, ["goto"] = 1, ["if"] = 1, ["in"] = 1,
    ["local"] = 1, ["nil"] = 1, ["not"] = 1, ["or"] = 1, ["repeat"] = 1, ["return"] = 1,
    ["then"] = 1, ["true"] = 1, ["until"] = 1, ["while"] = 1 })[s]
end

-- tostring through a __tostring that may fail: the failure is shown instead of raised.
local function safe_tostring(v)
  local ok, s = pcall(tostring, v)
  if ok and type(s) == "string" then return s end
  return ("<%s: __tostring failed: %s>"):format(type(v), tostring(s))
end

-- The help module, when it can be loaded (it is in the binary; never fatal here).
local help_module
local function help()
  if help_module == nil then
    local ok, h = pcall(require, "fmnist.help")
    help_module = ok and h or false
  end
  return help_module or nil
end

-- "function fm.load(what [, opts]) -> Dataset", or where a Lua function was defined.
function M.function_name(f)
  local h = help()
  local entry = h and h.entry_of(f)
  if entry then
    local sig = entry.sig or entry.name
    return "function " .. (sig:find(entry.name, 1, true) and sig or (entry.name .. ": " .. sig))
  end
  local info = debug.getinfo(f, "S")
  if info.what == "C" then return "function: builtin" end
  return ("function <%s:%d>"):format(info.short_src, info.linedefined)
end

-- Orders keys: integers, then other numbers, then strings, then the rest by their tostring.
local function key_rank(k)
  local t = type(k)
  if math.type(k) == "integer" then return 1 end
  if t == "number" then return 2 end
  if t == "string" then return 3 end
  if t == "boolean" then return 4 end
  return 5
end
local function key_less(a, b)
  local ra, rb = key_rank(a), key_rank(b)
  if ra ~= rb then return ra < rb end
  if ra <= 3 then return a < b end
  return safe_tostring(a) < safe_tostring(b)
end

local function key_text(k)
  if is_identifier(k) then return k end
  if type(k) == "string" then return "[" .. quote(k) .. "]" end
  if type(k) == "number" then return "[" .. tostring(k) .. "]" end
  return "[" .. safe_tostring(k) .. "]"
end

local render

-- A value with a metatable of its own tostring: one line inside a table (a tensor's last line,
-- "[fmnist.Tensor of size 10x10]"), whole at the top.
local function object_text(v, top)
  local s = safe_tostring(v)
  if top or not s:find("\n") then return s end
  local last = s:match("([^\n]+)\n*$")
  if last and last:match("^%[.*%]$") then return last end
  return s:match("^[^\n]*") .. " ..."
end

-- When the list part of t (n items, at least two) holds plain tables with the same names and
-- only numbers, strings or booleans in them, returns those names sorted; else nil.
local function records_columns(t, n)
  if n < 2 then return nil end
  local names
  for i = 1, n do
    local r = rawget(t, i)
    if type(r) ~= "table" or getmetatable(r) ~= nil or rawlen(r) > 0 then return nil end
    local keys = {}
    for k, v in next, r do
      local tv = type(v)
      if type(k) ~= "string" or (tv ~= "number" and tv ~= "string" and tv ~= "boolean") then
        return nil
      end
      keys[#keys + 1] = k
    end
    table.sort(keys)
    if names and table.concat(names, "\0") ~= table.concat(keys, "\0") then return nil end
    names = names or keys
  end
  return #names > 0 and names or nil
end

-- The rows of records_columns's tables as parts of render_table: a header, then one line per
-- record under it, numbers right-aligned; a part saying how many more when cut.
local function records_rows(t, columns, shown, o, indent)
  local cells, widths = {}, { #"#" }
  for c, name in ipairs(columns) do widths[c + 1] = #name end
  for i = 1, shown do
    local r = rawget(t, i)
    local row = { tostring(i) }
    widths[1] = math.max(widths[1], #row[1])
    for c, name in ipairs(columns) do
      local v = r[name]
      local text = math.type(v) == "float" and short_float(v)
        or type(v) == "string" and quote(v) or tostring(v)
      row[c + 1] = text
      widths[c + 1] = math.max(widths[c + 1], #text)
    end
    cells[i] = row
  end
  local function line(row)
    local out = {}
    for c, text in ipairs(row) do out[c] = (" "):rep(widths[c] - #text) .. text end
    return (table.concat(out, "  "):gsub("%s+$", ""))
  end
  local header = { "#" }
  for c, name in ipairs(columns) do header[c + 1] = name end
  local rows = { "-- " .. line(header) }
  for i = 1, shown do rows[#rows + 1] = "   " .. line(cells[i]) end
  local parts = { table.concat(rows, "\n" .. (" "):rep(indent)) }
  if rawlen(t) > shown then parts[2] = ("-- ... (%d more rows)"):format(rawlen(t) - shown) end
  return parts
end

-- Renders table t at indentation `indent`; path names it for cycle marks.
local function render_table(t, o, indent, ctx, path, depth)
  if ctx.open[t] then return "<cycle: " .. ctx.open[t] .. ">" end
  if depth >= o.depth then
    local n = rawlen(t)
    return n > 0 and ("{...} (%d items)"):format(n) or "{...}"
  end
  ctx.open[t] = path
  local n = rawlen(t)
  local parts, list_count = {}, 0
  local shown = math.min(n, o.items)
  local columns = records_columns(t, n)
  if columns then
    -- Records with the same fields (the epochs of a history): one aligned row each.
    parts = records_rows(t, columns, shown, o, indent + 2)
    list_count, shown = 0, shown
  end
  for i = columns and shown + 1 or 1, shown do
    parts[#parts + 1] = render(rawget(t, i), o, indent + 2, ctx, path .. "[" .. i .. "]", depth + 1)
    list_count = list_count + 1
  end
  if n > shown then parts[#parts + 1] = ("... (%d more items)"):format(n - shown) end
  local keys = {}
  for k in next, t do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, key_less)
  local shown_keys = math.min(#keys, o.keys)
  for i = 1, shown_keys do
    local k = keys[i]
    local sub = is_identifier(k) and (path .. "." .. k) or (path .. key_text(k))
    parts[#parts + 1] = key_text(k) .. " = " .. render(rawget(t, k), o, indent + 2, ctx, sub, depth + 1)
  end
  if #keys > shown_keys then parts[#parts + 1] = ("... (%d more keys)"):format(#keys - shown_keys) end
  ctx.open[t] = nil
  if #parts == 0 then return "{}" end
  -- One line when it fits and nothing inside takes several.
  local one = "{" .. table.concat(parts, ", ") .. "}"
  if not columns and not one:find("\n") and indent + #one <= o.width then return one end
  -- Several lines: list items that are short are packed several to a line.
  local pad = (" "):rep(indent + 2)
  local lines, line = {}, nil
  for i, p in ipairs(parts) do
    if columns and p:sub(1, 3) == "-- " then
      -- the rows of records: comments and aligned lines, no commas
      if line then lines[#lines + 1] = line .. "," end
      line = nil
      lines[#lines + 1] = pad .. p
      goto next_part
    end
    local packable = i <= list_count and not p:find("\n") and #p <= 24
    if packable and line and #line + 2 + #p <= o.width then
      line = line .. ", " .. p
    else
      if line then lines[#lines + 1] = line .. "," end
      line = packable and (pad .. p) or nil
      if not packable then lines[#lines + 1] = pad .. p .. "," end
    end
    ::next_part::
  end
  if line then lines[#lines + 1] = line .. "," end
  return "{\n" .. table.concat(lines, "\n") .. "\n" .. (" "):rep(indent) .. "}"
end

render = function(v, o, indent, ctx, path, depth, top)
  local t = type(v)
  if t == "string" then
    if top and not o.quote then return v end
    return quote(v)
  elseif t == "function" then
    return M.function_name(v)
  elseif t == "table" then
    local mt = getmetatable(v)
    if type(mt) == "table" and rawget(mt, "__tostring") then
      -- An object with its own text (a result), opened up when asked for at the top.
      return object_text(v, top)
    end
    return render_table(v, o, indent, ctx, path, depth)
  elseif t == "userdata" then
    return object_text(v, top)
  elseif math.type(v) == "float" and not top then
    -- Inside a table seven digits are plenty, and keep a row of scores on one line.
    return short_float(v)
  end
  return safe_tostring(v)
end

-- Cuts a text to o.lines lines, saying how many were left out.
local function cut_lines(s, limit)
  if limit == 0 then return s end
  local count, pos = 0, 0
  while true do
    local nl = s:find("\n", pos + 1, true)
    if not nl then return s end
    count = count + 1
    if count == limit then
      local _, more = s:sub(nl + 1):gsub("\n", "")
      return s:sub(1, nl) .. ("... (%d more lines: pretty.show(x, {lines = 0}) shows all)")
        :format(more + 1)
    end
    pos = nl
  end
end

function M.show(v, opts)
  local o = options(opts)
  return cut_lines(render(v, o, 0, { open = {} }, "root", 0, true), o.lines)
end

return M
