-- test_process.lua: fm.process — starting programs without a shell, the channel to a child,
-- waiting and signals, and the file operations shared result folders rely on.
local T = require "testlib"
local fm = require "fmnist"
local P = fm.process

local exe = P.executable()
T.ok(exe:find("/", 1, true) == 1, "executable() is an absolute path")
T.ok(P.cpus() >= 1, "cpus() is at least 1")
T.ok(type(P.hostname()) == "string" and #P.hostname() > 0, "hostname()")
T.ok(math.type(P.pid()) == "integer" and P.pid() > 0, "pid()")

-- A child that runs Lua: this program with -e (the host and a stock lua5.4 both take it).
local function lua_child(code, opts)
  opts = opts or {}
  opts.env = opts.env or {}
  opts.env.LUA_PATH_5_4, opts.env.LUA_CPATH_5_4 = package.path, package.cpath
  return P.spawn({ exe, "-e", code }, opts)
end

-- ---- the channel ----
do
  local p = lua_child([[
    local P = require("fmnist").process
    local ch = P.channel()
    local line = ch:receive()
    local block = ch:receive(5)
    ch:send("got " .. line .. "|" .. block .. "|" .. tostring(os.getenv("FMNIST_CHANNEL_FD")) .. "\n")
  ]], { channel = true })
  T.ok(p.pid > 0, "spawn returns a process with a pid")
  T.ok(tostring(p):find("fmnist.Process " .. p.pid, 1, true), "tostring names the pid")
  T.eq(p:send("hello\nab\0cd"), true, "send")
  local ready = P.poll({ p }, 30)
  T.eq(#ready, 1, "poll: the child has answered")
  T.ok(ready[1] == p, "poll returns the process itself")
  T.eq(p:receive(), "got hello|ab\0cd|nil", "a line and a block with a NUL byte went through; the "
    .. "variable is gone once the channel is taken")
  T.eq(p:receive(), nil, "nil at the end of the channel")
  T.eq(select("#", p:wait()), 2, "wait gives two values for an exit")
  local how, code = p:wait()
  T.eq({ how, code }, { "exited", 0 }, "the child exited with 0")
  local again, err = p:send("x")
  T.ok(again == nil and type(err) == "string", "sending to an ended child fails without killing the sender")
end

-- poll waits at most the time given and returns nothing when nothing came
do
  local p = lua_child("require('fmnist').process.channel():receive()", { channel = true })
  T.eq(#P.poll({ p }, 0.05), 0, "poll: nothing to receive yet")
  p:close()
  local how, code = p:wait()
  T.eq({ how, code }, { "exited", 0 }, "closing the channel ends a child that waits on it")
end

-- signals
do
  local p = lua_child("require('fmnist').process.sleep(60)", { channel = true })
  T.eq(p:wait(true), nil, "wait(true) while it runs: nil")
  T.eq(p:kill("KILL"), true, "kill")
  local how, sig, name = p:wait()
  T.eq({ how, sig, name }, { "signaled", 9, "SIGKILL" }, "it was killed by SIGKILL")
  T.eq(p:kill("TERM"), false, "kill after the end: false")
  T.err("unknown signal 'STOP' (known: INT, TERM, KILL", p.kill, p, "STOP")
end

-- a process object collected while its child runs kills and reaps it
do
  local pid
  do
    local p = lua_child("require('fmnist').process.sleep(60)")
    pid = p.pid
  end
  collectgarbage()
  collectgarbage()
  local alive = io.open("/proc/" .. pid .. "/stat")
  local state = alive and alive:read("a"):match("^%d+ %b() (%a)")
  if alive then alive:close() end
  T.ok(state == nil, "no child (not even a zombie) left after collection")
end

-- the environment, the streams, no shell
do
  local dir = T.tmpdir()
  local out = dir .. "/out.txt"
  local p = P.spawn({ "sh", "-c", 'printf "%s|%s|%s" "$A" "${HOME-unset}" "$1" > "$0"', out, "$(not run)" },
    { env = { A = "x y", HOME = false } })
  p:wait()
  T.eq(T.read(out), "x y|unset|$(not run)", "env set and removed; arguments reach the program as given")
  local q = P.spawn({ "sh", "-c", "echo to-stdout; echo to-stderr >&2" }, { stdout = "null", stderr = "null" })
  T.eq({ q:wait() }, { "exited", 0 }, "stdout and stderr to /dev/null")
end

T.err("cannot start '/nonexistent/program' (No such file or directory)", P.spawn, { "/nonexistent/program" })
T.err("argv must list the program", P.spawn, {})
T.err("argument 2 must be a string, got table", P.spawn, { "sh", {} })
T.err("argument 2 holds a NUL byte", P.spawn, { "sh", "a\0b" })
T.err("unknown option 'cwd' (known: env, stdin, stdout, stderr, channel)", P.spawn, { "sh" }, { cwd = "/" })
T.err("option 'stdout' must be \"inherit\" or \"null\"", P.spawn, { "sh" }, { stdout = "file" })
T.err("env name 'A=B' is empty or holds '='", P.spawn, { "true" }, { env = { ["A=B"] = "1" } })
T.err("env value of 'A' must be a string or false", P.spawn, { "true" }, { env = { A = 1 } })
T.err("channel: FMNIST_CHANNEL_FD is not set", P.channel)
T.err("poll: item 1 is a number, not a process", P.poll, { 1 }, 0)

-- ---- files ----
do
  local dir = T.tmpdir()
  local f = dir .. "/a.txt"
  P.write_file(f, "one")
  T.eq(T.read(f), "one", "write_file")
  P.write_file(f, "two\0bytes")
  T.eq(T.read(f), "two\0bytes", "write_file replaces the file whole")
  T.err("write_file: " .. dir .. "/missing/b.txt: cannot write", P.write_file, dir .. "/missing/b.txt", "x")
  local names = P.list(dir)
  T.eq(names, { "a.txt" }, "list: no temporary file is left behind")
  P.append(dir .. "/log", "line 1\n")
  P.append(dir .. "/log", "line 2\n")
  T.eq(T.read(dir .. "/log"), "line 1\nline 2\n", "append")
  P.mkdir(dir .. "/sub")
  P.mkdir(dir .. "/sub")
  T.ok(P.list(dir .. "/sub"), "mkdir, twice")
  T.err("mkdir: " .. f .. ": exists and is not a folder", P.mkdir, f)
  T.err("list: " .. dir .. "/none: No such file or directory", P.list, dir .. "/none")
end

-- lines appended by many processes at once never interleave
do
  local dir = T.tmpdir()
  local log = dir .. "/log"
  local kids = {}
  for k = 1, 4 do
    kids[k] = lua_child(string.format([[
      local P = require("fmnist").process
      for i = 1, 200 do P.append(%q, string.rep("%d", 3000) .. "\n") end
    ]], log, k))
  end
  for _, p in ipairs(kids) do p:wait() end
  local good, lines = true, 0
  for line in T.read(log):gmatch("([^\n]*)\n") do
    lines = lines + 1
    if not line:find("^%d") or line ~= string.rep(line:sub(1, 1), 3000) then good = false end
  end
  T.ok(good and lines == 800, "800 lines of 3000 bytes from 4 processes, none mixed")
end

T.done()
