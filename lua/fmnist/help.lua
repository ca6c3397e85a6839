-- fmnist.help (fm.help): the help text of every public function, method, option table and field —
-- what help(x) and ?x print at the REPL, what `fmnist-lua help NAME` prints in a shell, and what
-- doc/API.md is made of (`fmnist-lua help --markdown > doc/API.md`). The examples in it are run by
-- the tests (tests/lua/test_help.lua).
--
-- The text lives next to the code it is about: the C bindings' in lua/fmnist/doc_<topic>.lua
-- (every embedded module whose name starts with doc_ is loaded when help is first needed), a Lua
-- module's in the module itself or its own doc_ file. To add an entry:
--
--   local doc = require("fmnist.help").section("Models", 30, [[What the section is about.]])
--   doc {
--     name = "Model:fit",                -- fm.name, Class:method, Class.field, fm.plot.bar, ...
--     sig = "model:fit(ds [, opts]) -> history",
--     text = [[One paragraph: what it does, what it returns, what it raises.]],
--     options = { { "epochs", "how many passes ..." }, ... },  -- the keys of an option table
--     example = [[
--   local h = model:fit(ds, {epochs = 1})
--   print(h.epochs)                      --> 1
--   ]],
--     needs = "dataset",                 -- the example needs: "dataset", "gnuplot" (or a list)
--     see = { "Model:evaluate" },
--   }
--
-- value = false marks an entry that names no value help(x) should find (the REPL's `_`).
--
-- A class is an entry too: { name = "Model", class = "fmnist.Model", text = ... } where class is
-- the name of its metatable in the registry (userdata) or a path from fm to its table
-- ("fm.notebook.Notebook"); its methods (Model:fit) and fields (Model.kind) are entries of their
-- own, listed under it. In an example, a line ending in `--> text` must print that text (spaces
-- and tabs compared as one space; a final "..." matches any rest).
--
--   help.show(x)      prints the help of a value, a name ("fit", "Model:fit") or the overview
--   help.text(x)      the same as a string
--   help.entry_of(v)  the entry of a function or class value, or nil
--   help.find(name)   the entries whose name is or ends with name
--   help.source(f)    the Lua source of a function, for ??f
--   help.markdown()   doc/API.md
--   help.entries()    every entry, in section order
--   help.run_example(entry) -> ok, message
local M = {}

local fm = require "fmnist"

local sections = {}     -- name -> {name, order, intro, entries = {}}
local by_name = {}      -- entry name -> entry
local loaded = false    -- the doc_ modules have been loaded
local reverse = nil     -- value -> entry, built on demand (reset when entries are added)

local KNOWN = { name = true, sig = true, text = true, options = true, example = true,
                needs = true, see = true, class = true, fields = true, value = true }

local function fail(fmt, ...) error("help: " .. fmt:format(...), 3) end

-- help.section(name, order, intro) -> doc: a function adding entries to the section.
function M.section(name, order, intro)
  if type(name) ~= "string" then fail("section: the name must be a string") end
  local s = sections[name]
  if not s then
    s = { name = name, order = order or 100, intro = intro, entries = {} }
    sections[name] = s
  else
    s.order = order or s.order
    s.intro = intro or s.intro
  end
  return function(entry)
    if type(entry) ~= "table" then fail("an entry must be a table") end
    for k in pairs(entry) do
      if not KNOWN[k] then
        local names = {}
        for key in pairs(KNOWN) do names[#names + 1] = key end
        table.sort(names)
        fail("entry %s: unknown key '%s' (known: %s)", tostring(entry.name), tostring(k),
          table.concat(names, ", "))
      end
    end
    if type(entry.name) ~= "string" or type(entry.text) ~= "string" then
      fail("an entry needs a name and a text (got %s)", tostring(entry.name))
    end
    if by_name[entry.name] then fail("entry %s is defined twice", entry.name) end
    entry.section = s.name
    by_name[entry.name] = entry
    s.entries[#s.entries + 1] = entry
    reverse = nil
    return entry
  end
end

-- Loads every embedded doc_ module (once).
local function load_all()
  if loaded then return end
  loaded = true
  local names = {}
  for key in pairs(package.preload) do
    if type(key) == "string" and key:match("^fmnist%.doc_[%w_]+$") then names[#names + 1] = key end
  end
  table.sort(names)
  for _, name in ipairs(names) do require(name) end
end

-- Every entry, sections in order, entries in the order they were added.
function M.entries()
  load_all()
  local list = {}
  for _, s in pairs(sections) do list[#list + 1] = s end
  table.sort(list, function(a, b)
    if a.order ~= b.order then return a.order < b.order end
    return a.name < b.name
  end)
  local out = {}
  for _, s in ipairs(list) do
    for _, e in ipairs(s.entries) do out[#out + 1] = e end
  end
  return out, list
end

function M.get(name)
  load_all()
  return by_name[name]
end

-- ---- from values to entries ----

-- The value at a dotted path from fm ("fm.plot.bar"), or nil. Lazily loaded modules load.
local function resolve_path(path)
  local head, rest = path:match("^([%w_]+)(.*)$")
  if not head then return nil end
  local v
  if head == "fm" then
    v = fm
  else
    v = rawget(_G, head)
    -- a module of the program that fm does not load ("host.capture_start": fmnist.host)
    if v == nil and package.preload["fmnist." .. head] then
      local ok, m = pcall(require, "fmnist." .. head)
      v = ok and m or nil
    end
  end
  for key in (rest or ""):gmatch("%.([%w_]+)") do
    if type(v) ~= "table" then return nil end
    local ok, nv = pcall(function() return v[key] end)
    if not ok then return nil end
    v = nv
  end
  return v
end

-- The table of a class's methods: its registry metatable's methods (or __index table), or the
-- class table at a path from fm.
local function class_methods(class_entry)
  local mt = debug.getregistry()[class_entry.class]
  if type(mt) == "table" then
    if type(rawget(mt, "methods")) == "table" then return rawget(mt, "methods"), mt end
    if type(rawget(mt, "__index")) == "table" then return rawget(mt, "__index"), mt end
    return nil, mt
  end
  local t = resolve_path(class_entry.class)
  if type(t) == "table" then return t, t end
  return nil
end

-- The value an entry names: a function, a module or class table; nil for fields.
function M.value_of(entry)
  if entry.value == false then return nil end
  local class, sep, member = entry.name:match("^([%w_]+)([:.])([%w_]+)$")
  local owner = class and by_name[class]
  if owner and owner.class then
    local methods = class_methods(owner)
    if sep == ":" and methods then return rawget(methods, member) end
    return nil
  end
  if entry.class then
    local methods, mt = class_methods(entry)
    return mt or methods
  end
  local v = resolve_path(entry.name)
  if type(v) == "function" or type(v) == "table" then return v end
  return nil
end

local function build_reverse()
  load_all()
  if reverse then return reverse end
  reverse = {}
  for _, e in ipairs(M.entries()) do
    local ok, v = pcall(M.value_of, e)
    if ok and v ~= nil and reverse[v] == nil then reverse[v] = e end
  end
  return reverse
end

-- The class entry of an object: by its metatable's __name, or its metatable being a class's.
local function class_of(v)
  local mt = getmetatable(v)
  if type(mt) ~= "table" then return nil end
  local name = rawget(mt, "__name")
  for _, e in pairs(by_name) do
    if e.class and (e.class == name) then return e end
  end
  local rev = build_reverse()
  local e = rev[mt] or (type(rawget(mt, "__index")) == "table" and rev[rawget(mt, "__index")])
  if e and e.class then return e end
  return nil
end

function M.entry_of(v)
  if v == nil then return nil end
  local rev = build_reverse()
  local e = rev[v]
  if e then return e end
  if type(v) == "userdata" or type(v) == "table" then return class_of(v) end
  return nil
end

-- The entries whose name is name, or ends with .name or :name; or, failing that, contain it.
function M.find(name)
  load_all()
  if by_name[name] then return { by_name[name] } end
  local found = {}
  for _, e in ipairs(M.entries()) do
    local n = e.name
    if n:sub(-#name - 1) == "." .. name or n:sub(-#name - 1) == ":" .. name then
      found[#found + 1] = e
    end
  end
  if #found == 0 then
    local lower = name:lower()
    for _, e in ipairs(M.entries()) do
      if e.name:lower():find(lower, 1, true) then found[#found + 1] = e end
    end
  end
  return found
end

-- The members of a class entry: its fields and methods, in the order they were added.
local function members(class_entry)
  local list = {}
  local prefix_dot, prefix_colon = class_entry.name .. ".", class_entry.name .. ":"
  for _, e in ipairs(M.entries()) do
    if e.name:sub(1, #prefix_dot) == prefix_dot or e.name:sub(1, #prefix_colon) == prefix_colon then
      list[#list + 1] = e
    end
  end
  return list
end
M.members = members

-- The field names of a class (for completion): from the entries Class.field.
function M.fields(class_name)
  load_all()
  local out = {}
  for _, e in ipairs(members(by_name[class_name] or { name = class_name })) do
    local field = e.name:match("^[%w_]+%.([%w_]+)$")
    if field then out[#out + 1] = field end
  end
  return out
end

-- The class entry whose metatable is called tname ("fmnist.Model"), or whose table is t.
function M.class_entry(tname_or_table)
  load_all()
  if type(tname_or_table) == "string" then
    for _, e in pairs(by_name) do
      if e.class == tname_or_table then return e end
    end
    return nil
  end
  local e = build_reverse()[tname_or_table]
  return e and e.class and e or nil
end

-- ---- text for the terminal ----

-- The first sentence of a text, for lists.
local function first_sentence(text)
  local s = text:gsub("%s+", " "):gsub("^ ", "")
  local cut = s:find("[%.:;] ") or s:find("%.$")
  s = cut and s:sub(1, cut) or s
  if #s > 76 then s = s:sub(1, 73) .. "..." end
  return (s:gsub("[;:]$", "."))
end

local function indent(text, pad)
  return pad .. text:gsub("\n$", ""):gsub("\n", "\n" .. pad)
end

local function option_lines(options, pad)
  local width = 0
  for _, o in ipairs(options) do width = math.max(width, #o[1]) end
  local lines = {}
  for _, o in ipairs(options) do
    local text = o[2]:gsub("%s+", " ")
    lines[#lines + 1] = pad .. o[1] .. (" "):rep(width - #o[1] + 2) .. text
  end
  return table.concat(lines, "\n")
end

local function entry_text(e)
  local out = { (e.sig or e.name) .. "    [" .. e.section .. "]", "" }
  out[#out + 1] = indent(e.text, "  ")
  if e.options and #e.options > 0 then
    out[#out + 1] = ""
    out[#out + 1] = "  Options:"
    out[#out + 1] = option_lines(e.options, "    ")
  end
  if e.class then
    local fields, methods = {}, {}
    for _, m in ipairs(members(e)) do
      local list = m.name:find(":", 1, true) and methods or fields
      list[#list + 1] = { m.sig or m.name, first_sentence(m.text) }
    end
    if #fields > 0 then
      out[#out + 1] = ""
      out[#out + 1] = "  Fields:"
      out[#out + 1] = option_lines(fields, "    ")
    end
    if #methods > 0 then
      out[#out + 1] = ""
      out[#out + 1] = "  Methods (help \"" .. e.name .. ":name\" for each):"
      out[#out + 1] = option_lines(methods, "    ")
    end
  end
  if e.example then
    out[#out + 1] = ""
    out[#out + 1] = "  Example:"
    out[#out + 1] = indent(e.example, "    ")
  end
  if e.see and #e.see > 0 then
    out[#out + 1] = ""
    out[#out + 1] = "  See also: " .. table.concat(e.see, ", ")
  end
  return table.concat(out, "\n") .. "\n"
end

local function overview()
  local _, list = M.entries()
  local out = {
    "Help: help(x) or ?x for any function, method, object or name (help \"fit\"); ??f shows a",
    "Lua function's source. help(fm) lists the module; `fmnist-lua help NAME` works in a shell",
    "and doc/API.md has all of it.", "",
  }
  for _, s in ipairs(list) do
    local names = {}
    for _, e in ipairs(s.entries) do names[#names + 1] = e.name end
    out[#out + 1] = s.name
    local line = "  "
    for i, n in ipairs(names) do
      local piece = n .. (i < #names and ", " or "")
      if #line + #piece > 96 then
        out[#out + 1] = line:gsub("%s+$", "")
        line = "  "
      end
      line = line .. piece
    end
    out[#out + 1] = line
  end
  return table.concat(out, "\n") .. "\n"
end

local function list_text(entries, what)
  local out = { ("%d entries match %s:"):format(#entries, what) }
  local rows = {}
  for _, e in ipairs(entries) do rows[#rows + 1] = { e.sig or e.name, first_sentence(e.text) } end
  out[#out + 1] = option_lines(rows, "  ")
  return table.concat(out, "\n") .. "\n"
end

-- help.text(x [, given]) -> string. given is false when help was called with no argument.
function M.text(x, given)
  load_all()
  if x == nil and given == false then return overview() end
  if type(x) == "string" then
    local found = M.find(x)
    if #found == 1 then return entry_text(found[1]) end
    if #found > 1 then return list_text(found, ("'%s'"):format(x)) end
    return ("No help for '%s'. help() lists every topic.\n"):format(x)
  end
  if x == fm then return overview() end
  local e = M.entry_of(x)
  if e then return entry_text(e) end
  local what = type(x)
  if what == "function" then
    local info = debug.getinfo(x, "S")
    return ("No help for this function (%s). ??f shows the source of a Lua function.\n")
      :format(info.what == "C" and "builtin" or (info.short_src .. ":" .. info.linedefined))
  end
  return ("No help for a %s value. help() lists every topic; help \"name\" looks a name up.\n")
    :format(what)
end

function M.show(...)
  local given = select("#", ...) > 0
  io.write(M.text((...), given))
end

-- ---- source ----

-- The text of a Lua chunk: an embedded module's (through the program), else the file's.
local function chunk_text(source)
  local path = source:match("^@(.*)$")
  if not path then return nil end
  local module = path:match("^lua/fmnist/([%w_]+)%.lua$")
  if module then
    local ok, host = pcall(require, "fmnist.host")
    if ok and host.module_source then
      local text = host.module_source(module)
      if text then return text end
    end
  end
  local f = io.open(path, "r")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

-- help.source(f) -> the lines that define the Lua function f, with the file and line.
function M.source(f)
  if type(f) ~= "function" then
    return ("source: a function is needed, not a %s\n"):format(type(f))
  end
  local info = debug.getinfo(f, "S")
  if info.what == "C" then
    local e = M.entry_of(f)
    return ("%s is built in (C): no Lua source to show.%s\n"):format(e and e.name or "this function",
      e and (" help(" .. e.name .. ") describes it.") or "")
  end
  local text = chunk_text(info.source)
  if not text then return ("source: cannot read %s\n"):format(info.short_src) end
  local lines, n = {}, 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if n >= info.linedefined and n <= info.lastlinedefined then lines[#lines + 1] = line end
  end
  return ("-- %s:%d\n%s\n"):format(info.short_src, info.linedefined, table.concat(lines, "\n"))
end

-- ---- doc/API.md ----

local function md_escape_cell(s) return (s:gsub("|", "\\|"):gsub("%s+", " ")) end

local function anchor(name)
  local a = name:lower():gsub("[^%w]+", "-"):gsub("^%-", ""):gsub("%-$", "")
  if a == "" then a = "sym-" .. name:gsub(".", function(c) return ("%02x"):format(c:byte()) end) end
  return a
end

function M.markdown()
  local entries, list = M.entries()
  local out = {
    "# fmnist-lua API",
    "",
    "<!-- Generated from the help text (lua/fmnist/doc_*.lua and the modules' own entries) by",
    "     `./fmnist-lua help --markdown > doc/API.md`: edit those, not this file. -->",
    "",
    "The same text is shown at the REPL by `help(x)` or `?x`, and in a shell by",
    "`fmnist-lua help NAME`. Examples assume `local fm = require \"fmnist\"`.",
    "",
  }
  for _, s in ipairs(list) do
    local names = {}
    for _, e in ipairs(s.entries) do names[#names + 1] = ("[%s](#%s)"):format(e.name, anchor(e.name)) end
    out[#out + 1] = ("- **%s**: %s"):format(s.name, table.concat(names, ", "))
  end
  out[#out + 1] = ""
  for _, s in ipairs(list) do
    out[#out + 1] = "## " .. s.name
    out[#out + 1] = ""
    if s.intro then
      out[#out + 1] = (s.intro:gsub("\n$", ""))
      out[#out + 1] = ""
    end
    for _, e in ipairs(s.entries) do
      out[#out + 1] = ('### <a id="%s"></a>`%s`'):format(anchor(e.name), e.sig or e.name)
      out[#out + 1] = ""
      out[#out + 1] = (e.text:gsub("\n$", ""))
      out[#out + 1] = ""
      if e.options and #e.options > 0 then
        out[#out + 1] = "| option | meaning |"
        out[#out + 1] = "|---|---|"
        for _, o in ipairs(e.options) do
          out[#out + 1] = ("| `%s` | %s |"):format(o[1], md_escape_cell(o[2]))
        end
        out[#out + 1] = ""
      end
      if e.example then
        out[#out + 1] = "```lua"
        out[#out + 1] = (e.example:gsub("\n$", ""))
        out[#out + 1] = "```"
        out[#out + 1] = ""
      end
      if e.see and #e.see > 0 then
        local links = {}
        for _, n in ipairs(e.see) do links[#links + 1] = ("[%s](#%s)"):format(n, anchor(n)) end
        out[#out + 1] = "See also: " .. table.concat(links, ", ")
        out[#out + 1] = ""
      end
    end
  end
  local _ = entries
  return table.concat(out, "\n")
end

-- ---- running the examples ----

local function normalise(s) return (s:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")) end

-- The example as a chunk that checks its `--> text` lines: each such line becomes
-- __mark(); <statement>; __check(line, text).
local function example_chunk(code)
  local out, n = {}, 0
  for line in (code .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local stmt, expected = line:match("^(.-)%s*%-%->%s?(.*)$")
    if stmt and stmt:match("%S") then
      out[#out + 1] = ("__mark(); %s; __check(%d, %q)"):format(stmt, n, expected)
    else
      out[#out + 1] = line
    end
  end
  return table.concat(out, "\n")
end

-- help.run_example(entry [, env]) -> true, or false and what went wrong. The example runs in a
-- fresh environment over the globals, with fm set and print recorded.
function M.run_example(entry, base)
  if not entry.example then return true end
  local printed, mark = {}, 1
  local failures = {}
  local env = setmetatable({}, { __index = base or _G })
  env.fm = fm
  env.print = function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    printed[#printed + 1] = table.concat(parts, "\t")
  end
  env.__mark = function() mark = #printed + 1 end
  env.__check = function(line, expected)
    local got = normalise(table.concat(printed, "\n", mark))
    local want = normalise(expected)
    local ok
    if want:sub(-3) == "..." then
      ok = got:sub(1, #want - 3) == want:sub(1, -4)
    else
      ok = got == want
    end
    if not ok then
      failures[#failures + 1] = ("line %d printed %q, not %q"):format(line, got, want)
    end
  end
  local chunk, err = load(example_chunk(entry.example), "=" .. entry.name .. " example", "t", env)
  if not chunk then return false, err end
  -- What the example writes other than through print (help text, pictures) is kept out of the
  -- way, when nothing else is capturing.
  local capture = require "fmnist.capture"
  local quiet = not capture.active() and not entry.name:find("capture", 1, true)
  if quiet then capture.start(false) end
  local ok, msg = pcall(chunk)
  if quiet then capture.stop() end
  if not ok then return false, tostring(msg) end
  if #failures > 0 then return false, table.concat(failures, "; ") end
  return true
end

return M
