-- fmnist.repl: the Lua side of the fmnist-lua REPL (lua/host.c calls it).
--
--   repl.install()          the session's globals: help
--   repl.show(...)          shows the values of an expression (fmnist.pretty) and sets _ to the first
--   repl.complete(text)     Tab: the completions of a name, a.b.c or obj:method
--   repl.help_line(s [, source])   a line "?x" (help) or "??x" (source)
--   repl.banner()           what the banner adds: how to get help, and what a notebook left
local M = {}

local pretty = require "fmnist.pretty"

local function help() return require "fmnist.help" end

-- The width of the terminal (for long tables), or 96.
local function width()
  local ok, host = pcall(require, "fmnist.host")
  local cols = ok and host.terminal_size and host.terminal_size()
  return cols and math.max(40, math.min(cols, 200)) or 96
end

function M.install()
  -- help(x): the help of a value or a name; help() the overview.
  rawset(_G, "help", function(...) help().show(...) end)
end

function M.show(...)
  local n = select("#", ...)
  if n == 0 then return end
  rawset(_G, "_", (...))
  local w = width()
  local parts = {}
  for i = 1, n do parts[i] = pretty.show((select(i, ...)), { width = w, quote = false }) end
  print(table.concat(parts, "\t"))
end

-- ---- completion ----

local KEYWORDS = { "and", "break", "do", "else", "elseif", "end", "false", "for", "function",
  "goto", "if", "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until",
  "while" }

local function is_identifier(s) return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil end

-- v[key] without letting an erring __index escape.
local function index(v, key)
  if type(v) == "table" then
    local raw = rawget(v, key)
    if raw ~= nil then return raw end
  elseif type(v) ~= "userdata" then
    return nil
  end
  local ok, r = pcall(function() return v[key] end)
  return ok and r or nil
end

-- Adds the string keys of table t (not metamethods) to names; only functions when methods_only.
local function add_keys(names, t, methods_only)
  if type(t) ~= "table" then return end
  for k, v in next, t do
    if is_identifier(k) and k:sub(1, 2) ~= "__" and (not methods_only or type(v) == "function") then
      names[k] = true
    end
  end
end

-- The names reachable from v by . (fields and methods) or : (methods only).
local function member_names(v, methods_only)
  local names = {}
  local fm = package.loaded.fmnist
  add_keys(names, v, methods_only)
  if rawequal(v, fm) and not methods_only then
    -- modules fm loads on first use (fm.plot), before anyone has touched them
    for key in pairs(package.preload) do
      local name = type(key) == "string" and key:match("^fmnist%.([%w_]+)$")
      if name and not name:match("^cmd_") and not name:match("^doc_") and name ~= "host" then
        names[name] = true
      end
    end
  end
  -- methods through the metatables, and fields help knows of
  local seen = {}
  local obj = v
  for _ = 1, 8 do
    local mt = getmetatable(obj)
    if type(mt) ~= "table" or seen[mt] then break end
    seen[mt] = true
    local idx = rawget(mt, "__index")
    local methods = type(idx) == "table" and idx or rawget(mt, "methods")
    add_keys(names, methods, methods_only)
    if not methods_only then
      local ok, h = pcall(help)
      local entry = ok and (h.class_entry(rawget(mt, "__name") or "") or h.class_entry(mt)
        or (type(methods) == "table" and h.class_entry(methods)))
      if entry then
        for _, field in ipairs(h.fields(entry.name)) do names[field] = true end
      end
    end
    if type(idx) ~= "table" then break end
    obj = idx
  end
  return names
end

function M.complete(text)
  local head, sep, partial = text:match("^(.-)([.:])([%w_]*)$")
  local names
  if not head then
    if not (text == "" or is_identifier(text)) then return {} end
    head, sep, partial = "", "", text
    names = {}
    add_keys(names, _G)
    for _, k in ipairs(KEYWORDS) do names[k] = true end
  else
    if head:find(":", 1, true) then return {} end -- a:b.c is not a name
    local v = _G
    for part in head:gmatch("[^.]+") do
      if not is_identifier(part) then return {} end
      v = index(v, part)
      if v == nil then return {} end
    end
    if head == "" or head:match("%.%.") or head:sub(-1) == "." then return {} end
    names = member_names(v, sep == ":")
  end
  local list = {}
  for name in pairs(names) do
    if name:sub(1, #partial) == partial then list[#list + 1] = head .. sep .. name end
  end
  table.sort(list)
  return list
end

-- ---- help at the prompt ----

function M.help_line(text, source)
  text = text:match("^%s*(.-)%s*$")
  local h = help()
  if text == "" then
    if source then
      io.write("??f shows the source of the Lua function f (??nb.draw.confusion)\n")
    else
      h.show()
    end
    return
  end
  local chunk = load("return " .. text, "=?", "t")
  local ok, v = false, nil
  if chunk then ok, v = pcall(chunk) end
  if source then
    if ok and type(v) == "function" then
      io.write(h.source(v))
    else
      io.write(("??%s: not a function (??f shows the source of a Lua function f)\n"):format(text))
    end
    return
  end
  if ok and v ~= nil then
    h.show(v)
  else
    h.show(text)
  end
end

-- ---- banner ----

function M.banner()
  print("help() or ?x for help, ??f for a function's source; Tab completes; _ is the last value")
  local nb = rawget(_G, "nb")
  local mt = getmetatable(nb)
  if type(nb) == "table" and type(mt) == "table" and type(rawget(mt, "__index")) == "table"
      and type(mt.__index.banner) == "function" then
    local ok, text = pcall(nb.banner, nb)
    if ok and type(text) == "string" then io.write(text) end
  end
end

return M
