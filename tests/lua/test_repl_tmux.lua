-- The REPL on a real terminal: fmnist-lua runs in a tmux pane, keys are sent to it and the
-- screen is read back. Help (?x), Tab completion (lazily loaded modules, dataset and model
-- fields, no metamethods), values shown, `x = 1; x`, Ctrl-C at the prompt, in a loop and in fit,
-- the banner after a notebook, Ctrl-D. tmux runs on a socket of its own; without tmux the test
-- is skipped (it is a Debian package: make deps installs it).
local T = require "testlib"
local fm = require "fmnist"

local host = os.getenv("FMNIST_HOST") or "./fmnist-lua"
local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local root = os.getenv("PWD")
local abs_host = host:sub(1, 1) == "/" and host or (root .. "/" .. host:gsub("^%./", ""))

if not os.execute("command -v tmux >/dev/null 2>&1") then
  T.ok(true, "# SKIP the REPL on a terminal: tmux is not installed (apt-get install tmux)")
  T.done()
  return
end

local dir = T.tmpdir()
local socket = dir .. "/tmux.sock"
local function tmux(args)
  local p = io.popen(("tmux -S %s %s 2>&1"):format(shell_quote(socket), args))
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end
local function screen() return (tmux("capture-pane -p -J -t repl -S -300")) end
local function keys(...)
  local words = {}
  for i, k in ipairs { ... } do words[i] = shell_quote(k) end
  tmux("send-keys -t repl " .. table.concat(words, " "))
end
local function literal(text) tmux("send-keys -t repl -l " .. shell_quote(text)) end

-- Waits until the screen holds text (or a pattern, when plain is false): readiness, not timing.
local function wait_for(text, plain)
  if plain == nil then plain = true end
  for _ = 1, 400 do
    local s = screen()
    if s:find(text, 1, plain) then return s end
    os.execute("sleep 0.05")
  end
  print("# waited in vain for " .. ("%q"):format(text))
  return screen()
end
local function last_line()
  local s = screen():gsub("%s+$", "")
  return s:match("([^\n]*)$")
end

local small = dir .. "/small"
do
  local px, lb = {}, {}
  for i = 1, 64 do
    px[i] = string.rep(string.char(i * 3), 784)
    lb[i] = string.char((i - 1) % 10)
  end
  T.write(small .. "-images-idx3-ubyte", string.pack(">I4>I4>I4>I4", 0x803, 64, 28, 28) .. table.concat(px))
  T.write(small .. "-labels-idx1-ubyte", string.pack(">I4>I4", 0x801, 64) .. table.concat(lb))
end

local cmd = ("env HOME=%s TERM=xterm-256color %s"):format(shell_quote(dir), shell_quote(abs_host))
local _, started = tmux(("new-session -d -s repl -x 110 -y 45 %s"):format(shell_quote(cmd)))
T.ok(started, "fmnist-lua starts in a tmux pane")
local s = wait_for("Tab completes; _ is the last value")
T.ok(s:find("fmnist-lua " .. fm.version, 1, true) and s:find("help() or ?x for help", 1, true),
  "the banner says how to get help")

-- help
literal("?fm.zeros")
keys("Enter")
s = wait_for("filled with 0.")
T.ok(s:find("fm.zeros(d1 [, d2, d3, d4]) -> Tensor", 1, true), "?x prints the help")
keys("C-l")

-- completion: a module fm loads on first use, not touched yet
literal("fm.pl")
keys("Tab")
s = wait_for("> fm.plot")
T.ok(last_line():find("> fm.plot$"), "Tab completes fm.pl to fm.plot before fm.plot was used: " .. last_line())
keys("C-u")

-- completion: model fields and methods, never metamethods
literal("m = fm.LogReg{}")
keys("Enter")
literal("m.ki")
keys("Tab")
wait_for("> m.kind")
T.ok(last_line():find("> m.kind$"), "Tab completes a model's field: " .. last_line())
keys("Enter")
s = wait_for("\nLogReg\n")
T.ok(s:find("\nLogReg\n", 1, true), "and its value is shown")
keys("C-l")
literal("m:")
keys("Tab", "Tab")
s = wait_for("m:predict_proba")
T.ok(s:find("m:fit", 1, true) and s:find("m:summary", 1, true), "Tab Tab lists a model's methods")
T.ok(not s:find("__", 1, true), "and no metamethods")
keys("C-u")
literal("ds = fm.load(" .. ("%q"):format(small .. "-images-idx3-ubyte") .. ")")
keys("Enter")
keys("C-l")
literal("ds.cl")
keys("Tab")
wait_for("> ds.classes")
T.ok(last_line():find("> ds.classes$"), "Tab completes a dataset's field: " .. last_line())
keys("Enter")
s = wait_for('"Ankle boot"}')
T.ok(s:find('{"T-shirt/top", "Trouser"', 1, true), "a table is shown opened up, not as table: 0x...")

-- `x = 1; x` is an error at once, and the next line is a fresh statement
keys("C-l")
literal("x = 1; x")
keys("Enter")
s = wait_for("an expression alone is not a statement")
T.ok(s:find("syntax error near <eof>", 1, true), "`x = 1; x`: the error at once")
literal("print(3 * 7)")
keys("Enter")
s = wait_for("\n21\n")
T.ok(s:find("\n21\n", 1, true), "and the prompt takes the next line as a new statement")

-- values and _
keys("C-l")
literal("{1, 2, {3, n = 'x'}}")
keys("Enter")
literal("_[3].n")
keys("Enter")
s = wait_for('\nx\n')
T.ok(s:find('{1, 2, {3, n = "x"}}', 1, true) and s:find("\nx\n", 1, true), "tables shown, _ holds the last")

-- Ctrl-C at the prompt discards the line
keys("C-l")
literal("this would be an error")
keys("C-c")
literal("print('after ctrl-c at the prompt')")
keys("Enter")
s = wait_for("\nafter ctrl-c at the prompt\n")
T.ok(s:find("\nafter ctrl-c at the prompt\n", 1, true) and not s:find("this would be an error%s*\n[^>]*error"),
  "Ctrl-C at the prompt drops the line being typed")

-- Ctrl-C in a running loop
keys("C-l")
literal("io.write('spinning\\n') while true do end")
keys("Enter")
wait_for("\nspinning\n")
keys("C-c")
s = wait_for("interrupted!")
T.ok(s:find("interrupted!", 1, true), "Ctrl-C stops a running loop")
literal("print('back at the prompt')")
keys("Enter")
s = wait_for("\nback at the prompt\n")
T.ok(s:find("\nback at the prompt\n", 1, true), "and the REPL goes on")

-- Ctrl-C in fit: training stops after the current batch, the model keeps its epochs
keys("C-l")
literal("m2 = fm.MLP{hidden = {8}, seed = 1}; h = m2:fit(ds, {epochs = 100000, verbose = false, on_epoch = function(e) if e == 3 then io.write('three epochs\\n') end end})")
keys("Enter")
wait_for("\nthree epochs\n")
keys("C-c")
s = wait_for("Stopped: interrupted (Ctrl-C)")
T.ok(s:find("Stopped: interrupted (Ctrl-C) ", 1, true), "Ctrl-C in fit stops training and says so")
literal("m2.epochs >= 3, h.interrupted, #h == m2.epochs")
keys("Enter")
s = wait_for("true%s+true%s+true", false)
T.ok(s:find("true%s+true%s+true"), "fit returned the history of the epochs the model kept")

-- Ctrl-D ends the session
keys("C-d")
local ended = false
for _ = 1, 200 do
  local _, alive = tmux("has-session -t repl")
  if not alive then
    ended = true
    break
  end
  os.execute("sleep 0.05")
end
T.ok(ended, "Ctrl-D ends the REPL")
local history = T.read(dir .. "/.fmnist_history") or ""
T.ok(history:find("x = 1; x", 1, true) ~= nil, "the lines typed are in ~/.fmnist_history")

-- the banner after a notebook: its values are globals
local nbfile = dir .. "/nb.lua"
T.write(nbfile, [[
nb = require("fmnist.notebook").new("tiny", arg, {title = "Tiny"})
if not nb then return end
nb:cell("Make", function() answer = 42 end)
nb:finish()
]])
local cmd2 = ("env HOME=%s TERM=xterm-256color %s -i %s %s"):format(shell_quote(dir), shell_quote(abs_host),
  shell_quote(nbfile), shell_quote(dir .. "/out"))
tmux(("new-session -d -s repl -x 110 -y 45 %s"):format(shell_quote(cmd2)))
s = wait_for("Its values are globals")
T.ok(s:find("Notebook " .. nbfile .. ": 1 cells. Its values are globals: answer.", 1, true),
  "after -i NOTEBOOK the banner names the values it left")
literal("answer")
keys("Enter")
s = wait_for("\n42\n")
T.ok(s:find("\n42\n", 1, true), "and they are there")
keys("C-d")

tmux("kill-server")
T.done()
