-- test_host.lua: the fmnist-lua program, run as a subprocess: options, the arg table, scripts
-- from files and stdin, exit statuses and error messages, and the REPL fed through a pipe.
-- The host is $FMNIST_HOST (tests/run.sh sets it), else the interpreter running this file.
local T = require "testlib"
local fm = require "fmnist"

local host = os.getenv("FMNIST_HOST") or arg[-1]

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local temps = {}
local function tempfile(contents)
  local name = os.tmpname()
  temps[#temps + 1] = name
  if contents then
    local f = assert(io.open(name, "w"))
    f:write(contents)
    f:close()
  end
  return name
end

local function slurp(name)
  local f = assert(io.open(name, "r"))
  local s = f:read("a")
  f:close()
  return s
end

-- Runs the host with the given shell words and stdin text; returns stdout, stderr, exit status.
-- stdin is never the terminal, so a forgotten argument cannot start an interactive session.
local function run(words, input)
  local errname = tempfile()
  local inname = tempfile(input or "")
  local cmd = string.format("%s %s <%s 2>%s", quote(host), words, inname, errname)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local _, _, status = p:close()
  return out, slurp(errname), status
end

local function has(s, text) return s:find(text, 1, true) ~= nil end

-- ---- -e ----
do
  local out, err, status = run("-e " .. quote("print(1 + 2, 'x')"))
  T.eq(out, "3\tx\n", "-e runs a statement")
  T.eq(status, 0, "-e: status 0")
  T.eq(err, "", "-e: nothing on stderr")

  out = run("-e " .. quote("y = 6") .. " -e" .. quote("print(y * 7)"))
  T.eq(out, "42\n", "several -e run in order, attached argument too")

  out, err, status = run("-e " .. quote("local function f() error('bad thing') end f()"))
  T.eq(status, 1, "error in -e: status 1")
  T.ok(has(err, "fmnist-lua: (command line):1: bad thing"), "error in -e: message with place")
  T.ok(has(err, "stack traceback:") and has(err, "in local 'f'"), "error in -e: traceback")

  out, err, status = run("-e " .. quote("x = = 1"))
  T.eq(status, 1, "syntax error in -e: status 1")
  T.ok(has(err, "fmnist-lua: (command line):1: unexpected symbol near '='"),
       "syntax error in -e: message")

  out, err, status = run("-e " .. quote("error(setmetatable({}, {__tostring = function() return 'custom' end}))"))
  T.ok(status == 1 and has(err, "fmnist-lua: custom"), "error object with __tostring is shown")
  out, err, status = run("-e " .. quote("error({})"))
  T.ok(status == 1 and has(err, "(error object is a table value)"), "error object without a message")

  out, err, status = run("-e " .. quote("os.exit(3)"))
  T.eq(status, 3, "os.exit status passes through")

  out, err, status = run("-e " .. quote("print('a')") .. " -e " .. quote("error('b')") .. " -e " .. quote("print('c')"))
  T.ok(out == "a\n" and has(err, "b") and status == 1, "an -e that fails stops the rest")
end

-- ---- scripts and arg ----
do
  local script = tempfile([[
print(#arg, arg[0] == SCRIPT, arg[1], arg[2], arg[-1], arg[-2], arg[-3] ~= nil)
print(select('#', ...), ...)
]])
  local out, err, status = run("-e " .. quote("SCRIPT = " .. string.format("%q", script)) .. " "
                               .. script .. " a " .. quote("b c"))
  T.eq(out, string.format("2\ttrue\ta\tb c\tSCRIPT = %q\t-e\ttrue\n2\ta\tb c\n", script),
       "script gets arg[0], arg[1..], negative indices and ...")
  T.eq(status, 0, "script: status 0")

  out = run(script)
  T.ok(out:sub(1, 2) == "0\t", "script without arguments: #arg is 0")
  T.ok(has(out, "\t" .. host .. "\t"), "script without options: arg[-1] is the host")

  local shebang = tempfile("#!/usr/bin/env fmnist-lua\nprint('ran')\n")
  T.eq(run(shebang), "ran\n", "a #! first line is skipped")

  local failing = tempfile("print('before')\nlocal function inner() local t = nil; return t.x end\ninner()\n")
  local err2
  out, err2, status = run(failing)
  T.eq(out, "before\n", "failing script: output before the error")
  T.eq(status, 1, "failing script: status 1")
  T.ok(has(err2, "fmnist-lua: " .. failing .. ":2: attempt to index a nil value (local 't')"),
       "failing script: message names file and line")
  T.ok(has(err2, "stack traceback:") and has(err2, "in local 'inner'"), "failing script: traceback")

  out, err, status = run("/nonexistent/dir/nosuch.lua")
  T.eq(status, 1, "missing script: status 1")
  T.eq(err, "fmnist-lua: cannot open /nonexistent/dir/nosuch.lua: No such file or directory\n",
       "missing script: clear message")

  out, err, status = run(script .. " -x")
  T.ok(status == 0 and has(out, "\t-x\t"), "options after the script belong to the script")

  out = run("-- " .. script .. " z")
  T.ok(has(out, "1\tz"), "-- ends the options")
end

-- ---- stdin as the script ----
do
  local out, err, status = run("", "print(1 + 1)\n")
  T.eq(out, "2\n", "stdin runs as a script when it is not a terminal")
  T.eq(status, 0, "stdin script: status 0")

  out = run("- x y", "print(arg[0], arg[1], ...)\n")
  T.eq(out, "-\tx\tx\ty\n", "- runs stdin with arguments")

  out, err, status = run("-", "print('partial')\nerror('from stdin')\n")
  T.ok(out == "partial\n" and status == 1 and has(err, "fmnist-lua: stdin:2: from stdin"),
       "error in stdin script: message and status 1")

  out = run("", "local fm = require 'fmnist'; print(fm.version)\n")
  T.eq(out, fm.version .. "\n", "stdin script can require fmnist")
end

-- ---- -v, -h, bad options ----
do
  local out, err, status = run("-v")
  T.eq(status, 0, "-v: status 0")
  local v = fm.versions()
  for _, name in ipairs({"fmnist", "lua", "openblas", "libpng", "zlib"}) do
    T.ok(type(v[name]) == "string" and has(out, name) and has(out, v[name]),
         "-v shows " .. name .. " " .. tostring(v[name]))
  end
  T.ok(has(out, "Lua 5.4") and has(out, "OpenBLAS"), "-v: Lua and OpenBLAS releases")

  out = run("-v -e " .. quote("print('after')"))
  T.ok(has(out, "zlib") and out:sub(-6) == "after\n", "-v then -e")

  out, err, status = run("-h")
  T.ok(status == 0 and has(out, "usage: fmnist-lua") and has(out, "-e stat") and err == "",
       "-h prints usage on stdout, status 0")

  out, err, status = run("-x")
  T.eq(status, 1, "unknown option: status 1")
  T.ok(has(err, "fmnist-lua: unrecognized option '-x'") and has(err, "usage:") and out == "",
       "unknown option: message and usage on stderr")

  out, err, status = run("-i-")
  T.ok(status == 1 and has(err, "unrecognized option '-i-'"), "option with extra letters refused")

  out, err, status = run("-e")
  T.ok(status == 1 and has(err, "'-e' needs an argument"), "-e without its argument")
  out, err, status = run("-l")
  T.ok(status == 1 and has(err, "'-l' needs an argument"), "-l without its argument")
end

-- ---- the module ----
do
  local out = run("-e " .. quote("local m = require 'fmnist'; print(type(m), type(m.versions), m == require 'fmnist')"))
  T.eq(out, "table\tfunction\ttrue\n", "require 'fmnist' gives the module table, once")

  out = run("-e " .. quote("print(fm)"))
  T.eq(out, "nil\n", "scripts get no global fm")

  out = run("-l fm=fmnist -e " .. quote("print(type(fm), fm.version)"))
  T.eq(out, "table\t" .. fm.version .. "\n", "-l fm=fmnist sets a global")

  local out2, err, status = run("-l no_such_module_here")
  T.ok(status == 1 and has(err, "module 'no_such_module_here' not found"), "-l with a missing module")
end

-- ---- the REPL through a pipe ----
do
  local out, err, status = run("-i", "1+1\nx = 5\nx\n")
  T.eq(out, "2\n5\n", "REPL prints expression values")
  T.eq(status, 0, "REPL: status 0 at end of input")
  T.eq(err, "", "REPL: nothing on stderr")

  out = run("-i", "function f(a)\n  return a * 2\nend\nf(21)\n")
  T.eq(out, "42\n", "REPL: a definition over several lines")

  out = run("-i", "1, 'a', nil\nprint('x')\nlocal y = 3\n")
  T.eq(out, "1\ta\tnil\nx\n", "REPL: several values separated by tabs; statements print nothing")

  out = run("-i", "type(fm), fm.version\n")
  T.eq(out, "table\t" .. fm.version .. "\n", "REPL: the module is the global fm")

  out = run("-i", "fm.zeros(2, 3)\n")
  T.eq(out, tostring(fm.zeros(2, 3)) .. "\n", "REPL: a tensor is printed through tostring")

  out, err, status = run("-i", "error('oops')\nprint('after')\n")
  T.eq(out, "after\n", "REPL: goes on after an error")
  T.ok(has(err, "stdin:1: oops") and has(err, "stack traceback:"), "REPL: error with traceback")
  T.ok(not has(err, "fmnist-lua:"), "REPL: messages are not prefixed with the program name")
  T.eq(status, 0, "REPL: an error does not change the exit status")

  out, err = run("-i", "x = = 1\nprint('next')\n")
  T.ok(out == "next\n" and has(err, "unexpected symbol near '='"), "REPL: syntax error reported")

  out, err = run("-i", "function g(\n")
  T.ok(has(err, "<eof>"), "REPL: an unfinished statement at end of input is reported")

  out = run("-i", "_PROMPT = 'never shown'\n2 * 21\n")
  T.eq(out, "42\n", "REPL: no prompts when stdin is not a terminal")

  local script = tempfile("z = 7\n")
  out = run("-i " .. script, "z\n")
  T.eq(out, "7\n", "-i runs the REPL after the script")

  out, err, status = run("-e " .. quote("print(1)"), "print(2)\n")
  T.eq(out, "1\n", "-e alone does not read stdin")
end

-- ---- the REPL: values, _, help, incomplete input ----
do
  local out, err = run("-i", "{1, 2, {3, x = 'y'}}\n_[3].x\n")
  T.eq(out, '{1, 2, {3, x = "y"}}\ny\n', "REPL: tables are opened up; _ holds the last value")
  out = run("-i", "local t = {}; t.me = t; return t\n")
  T.eq(out, "{me = <cycle: root>}\n", "REPL: a cycle is marked")
  out = run("-i", "fm.load\nfm.plot.image\n")
  T.eq(out, "function fm.load(what [, opts]) -> Dataset\nfunction fm.plot.image(t [, opts]) -> path\n",
    "REPL: functions by their signature (fm.plot loaded on the way)")
  out = run("-i", "'a\\nb'\n")
  T.eq(out, "a\nb\n", "REPL: a string is shown as it is, as lua does")
  out = run("-i", "fm.LogReg{}.defaults\n")
  T.ok(out:find('batch = 64', 1, true) and out:find('optimizer = "adam"', 1, true), "REPL: model.defaults opened up")

  local err2
  out, err2 = run("-i", "x = 1; x\nprint('next')\n")
  T.eq(out, "next\n", "REPL: `x = 1; x` does not wait for more lines; the next line runs")
  T.ok(has(err2, "stdin:1: syntax error near <eof> (an expression alone is not a statement"),
    "REPL: `x = 1; x` is an error at once, saying why (" .. err2:gsub("\n.*", "") .. ")")
  out, err2 = run("-i", "for i = 1, 2 do\nprint(i)\nend\n")
  T.eq(out, "1\n2\n", "REPL: an unfinished block still takes more lines")
  out = run("-i", "f = function(\na)\nreturn a end\nf(3)\n")
  T.eq(out, "3\n", "REPL: an unfinished argument list takes more lines")

  out = run("-i", "?fm.zeros\n")
  T.ok(out:find("^fm%.zeros%(d1 %[, d2, d3, d4%]%) %-> Tensor") and has(out, "Example:"), "REPL: ?x prints help")
  out = run("-i", "?Model:save\n")
  T.ok(out:find("^model:save%(path%) %-> path"), "REPL: ?Class:method finds a name that is not an expression")
  out = run("-i", "?fit\n")
  T.ok(out:find("^model:fit%(ds %[, opts%]%) %-> history"), "REPL: ?name finds a name by its end")
  out = run("-i", "help(fm.LogReg{})\n")
  T.ok(has(out, "Fields:") and has(out, "model.kind"), "REPL: help(object) gives its class")
  out = run("-i", "help()\n")
  T.ok(has(out, "Start here") and has(out, "Models"), "REPL: help() lists the topics")
  out = run("-i", "??fm.notebook.plural\n")
  T.ok(out:find("^%-%- lua/fmnist/notebook%.lua:%d+\nfunction M%.plural"), "REPL: ??f prints the Lua source")
  out = run("-i", "??fm.zeros\n")
  T.ok(has(out, "built in (C)"), "REPL: ??f of a C function says so")
  local err3
  out, err3 = run("-i", "?]]\n?\"x]=]\"\n")
  T.eq(out, "No help for ']]'. help() lists every topic.\nNo help for 'x]=]'. help() lists every topic.\n",
    "REPL: ? with closing brackets in the text is looked up as it is")
  T.eq(err3, "", "and raises nothing")
end

-- ---- -i after a script that fails ----
do
  local script = tempfile("made = 42\nerror('the script broke')\n")
  local out, err, status = run("-i " .. script, "made\n")
  T.eq(out, "42\n", "-i: the REPL opens after a failing script, with what it made")
  T.ok(has(err, "the script broke"), "-i: the script's error is shown")
  T.eq(status, 1, "-i: the exit status still says the script failed")
end

-- ---- error objects with __tostring: the message alone, as lua.c shows them ----
do
  local out, err, status = run("-e " .. quote("error(setmetatable({}, {__tostring = function() return 'plain message' end}))"))
  T.eq(err, "fmnist-lua: plain message\n", "an error object with __tostring: its message, no traceback")
  T.eq(status, 1, "and status 1")
end

-- ---- commands ----
do
  local out, err, status = run("report")
  T.ok(status == 1 and has(err, "report: no notebook given"), "fmnist-lua report without a notebook: an error")
  out, err, status = run("report --help")
  T.ok(status == 0 and has(out, "usage: fmnist-lua report [-o DIR] NOTEBOOK.lua"), "fmnist-lua report --help")
  out, err, status = run("report /nonexistent/x.lua")
  T.ok(status == 1 and has(err, "report: cannot open the notebook /nonexistent/x.lua"), "report: a missing notebook is named")
  out, err, status = run("report stray.txt x.lua")
  T.ok(status == 1 and has(err, "'stray.txt' comes before any notebook"), "report: a word before the first notebook")
  out, err, status = run("help fm.clock")
  T.ok(status == 0 and out:find("^fm%.clock%(%) %-> seconds"), "fmnist-lua help NAME")
  out = run("-e " .. quote("print(require('fmnist.pretty').show({1}))"))
  T.eq(out, "{1}\n", "a script may require fmnist.NAME before fmnist")
end

-- ---- Ctrl-C ----
do
  -- The loop says when it runs, so the signal never comes before the handler is set.
  local errname = tempfile()
  local cmd = string.format(
    "%s -e %s 2>%s & pid=$!; i=0; until grep -q spinning %s || [ $i -ge 200 ]; do sleep 0.05; i=$((i+1)); done; "
      .. "kill -INT $pid; wait $pid; echo $?",
    quote(host), quote("io.stderr:write('spinning\\n') while true do end"), errname, errname)
  local p = io.popen(cmd, "r")
  local out = p:read("a")
  p:close()
  local err = slurp(errname)
  T.eq(out, "1\n", "Ctrl-C stops a running script with status 1")
  T.ok(has(err, "fmnist-lua: interrupted!") and has(err, "stack traceback:"),
       "Ctrl-C: 'interrupted!' with a traceback")

  -- In the REPL the next line still runs after an interrupted one.
  local inname = tempfile("io.stderr:write('spinning\\n') while true do end\nprint('back')\n")
  errname = tempfile()
  cmd = string.format(
    "%s -i <%s 2>%s & pid=$!; i=0; until grep -q spinning %s || [ $i -ge 200 ]; do sleep 0.05; i=$((i+1)); done; "
      .. "kill -INT $pid; wait $pid; echo $?",
    quote(host), inname, errname, errname)
  p = io.popen(cmd, "r")
  out = p:read("a")
  p:close()
  err = slurp(errname)
  T.eq(out, "back\n0\n", "Ctrl-C in the REPL returns to it")
  T.ok(has(err, "interrupted!"), "Ctrl-C in the REPL: message")
end

-- The commands' modules are public (fm.cmd_tune, ...): called from Lua with something other than
-- a list of strings, each names the problem instead of failing inside.
do
  for _, name in ipairs({ "help", "predict", "report", "tune" }) do
    local run = require("fmnist.cmd_" .. name)
    T.err("fmnist-lua " .. name .. ": the arguments must be a list of strings, got nil", run)
    T.err("fmnist-lua " .. name .. ": the arguments: item 2 must be a string, got number", run,
      { "--help", 7 })
    T.eq(fm["cmd_" .. name], run, "fm.cmd_" .. name .. " is the command's function")
  end
end

for _, name in ipairs(temps) do os.remove(name) end
T.done()
