-- fmnist.cmd_report: the command `fmnist-lua report`, which runs notebooks for a report.
--
--   fmnist-lua report [-o DIR] NOTEBOOK.lua [ARGS...] [NOTEBOOK.lua [ARGS...] ...]
--
-- Each word ending in .lua starts a notebook; the words after it, up to the next one, are its
-- arguments. The notebooks run one after the other in this Lua state, each with globals of its
-- own, their cells' output, tables, figures and times kept; then DIR/index.html (one file with
-- the figures inside) and DIR/index.md (figures beside it) are written. DIR is out/report/NAME
-- for one notebook, out/report for several; each notebook writes its figures and model into DIR
-- (one notebook) or DIR/NAME (several), unless given a folder of its own. A failed cell is in
-- the report and the others run; Ctrl-C stops the notebooks but the report is still written.
-- The exit status is 0, 1 when a cell failed, 130 after Ctrl-C.
local notebook = require "fmnist.notebook"

local USAGE = [[
usage: fmnist-lua report [-o DIR] NOTEBOOK.lua [ARGS...] [NOTEBOOK.lua [ARGS...] ...]
Runs the notebooks and writes DIR/index.html (one self-contained file: figures inside, no
network needed, printable) and DIR/index.md (figures beside it). Each word ending in .lua starts
a notebook; the words after it are its arguments (--quick, --seed N, --format svg, ...).
  -o DIR     the report's folder (default out/report/NAME, or out/report for several notebooks)
  -h, --help print this and stop
Example: fmnist-lua report notebooks/cnn.lua --quick -o out/cnn-report]]

local function fail(fmt, ...)
  error("report: " .. fmt:format(...) .. " (fmnist-lua report --help)", 0)
end

-- Splits the words into the report's options and the notebooks with their arguments.
local function parse(args)
  local dir, groups, i = nil, {}, 1
  while i <= #args do
    local a = args[i]
    if a == "-o" then
      dir = args[i + 1]
      if not dir or dir == "" then fail("-o needs a folder") end
      i = i + 1
    elseif a:match("^%-o.") and not groups[1] then
      dir = a:sub(3)
    elseif (a == "-h" or a == "--help") and not groups[1] then
      return nil, nil, true
    elseif a:match("%.lua$") then
      groups[#groups + 1] = { path = a, args = {} }
    elseif groups[#groups] then
      table.insert(groups[#groups].args, a)
    else
      fail("'%s' comes before any notebook (a NOTEBOOK.lua first)", a)
    end
    i = i + 1
  end
  if #groups == 0 then fail("no notebook given") end
  return dir, groups
end

local function traceback(e)
  return { message = tostring(e), traceback = debug.traceback(tostring(e), 2) }
end

-- A stand-in for a script that failed before it made its notebook (or is no notebook at all),
-- so that the report says what happened.
local function stand_in(path, err)
  local name = path:match("([^/]+)%.lua$") or path
  return { name = name, title = path, script = path, o = { seed = "-" }, parameters = {}, cells = {
    { n = 1, title = "the script " .. path, status = "failed", items = {
      { kind = "error", message = err.message, traceback = err.traceback } } } } }
end

-- command: the command line to record, when the notebooks run for another script
-- (notebooks/report.lua); else fmnist-lua report with args.
return function(args, command)
  args = require("fmnist.check").strings("fmnist-lua report", args, "the arguments")
  local dir, groups, help = parse(args)
  if help then
    print(USAGE)
    return 0
  end
  if notebook.session then fail("a report is being made already; run the notebooks directly") end
  for _, g in ipairs(groups) do
    local f = io.open(g.path, "r")
    if not f then fail("cannot open the notebook %s", g.path) end
    f:close()
  end
  local several = #groups > 1
  if not dir then
    dir = several and "out/report" or ("out/report/" .. (groups[1].path:match("([^/]+)%.lua$")))
  end
  dir = dir:gsub("/+$", "")
  if dir == "" then dir = "/" end
  -- The command as typed: the host's arg has the program at -1 and the command word at 0.
  local argv = {}
  local a = rawget(_G, "arg")
  if type(a) == "table" and a[0] == "report" and a[-1] then
    argv = { tostring(a[-1]), "report" }
    for _, w in ipairs(args) do argv[#argv + 1] = w end
  else
    argv = { "fmnist-lua", "report" }
    for _, w in ipairs(args) do argv[#argv + 1] = w end
  end
  local session = notebook.begin_session(dir, command or argv)
  session.outdir = function(name) return several and (dir .. "/" .. name) or dir end
  session.models = several and dir or nil
  local status = 0
  for _, g in ipairs(groups) do
    local env = setmetatable({}, { __index = _G })
    env.arg = { [0] = g.path, table.unpack(g.args) }
    local count = #session.notebooks
    local chunk, lerr = loadfile(g.path, "t", env)
    local ok, err
    if chunk then
      ok, err = xpcall(chunk, traceback, table.unpack(g.args))
    else
      ok, err = false, { message = lerr, traceback = lerr }
    end
    local nb = session.notebooks[count + 1]
    if nb and not nb.finished then
      local fok, ferr = pcall(nb.finish, nb)
      if not fok then ok, err = false, err or { message = tostring(ferr) } end
    end
    if not nb and not ok then session.notebooks[#session.notebooks + 1] = stand_in(g.path, err) end
    if not ok then
      io.stdout:flush()
      if not nb then io.stderr:write(err.traceback, "\n") end
      status = 1
    end
    local interrupted = (nb and nb.interrupted) or (not ok and err.message:find("interrupted", 1, true))
    if interrupted then
      status = 130
      io.stderr:write("report: interrupted; the notebooks after ", g.path, " do not run\n")
      break
    end
  end
  session.finished = notebook.clock()
  notebook.session = nil
  local html, md = require("fmnist.report").write(session)
  print()
  print(("Report: %s and %s"):format(html, md))
  return status
end
