-- Help text of worker processes, files written whole and the machine (lua/l_process.c:
-- fm.process; lua/fmnist.c: fm.threads): see lua/fmnist/help.lua.
local doc = require("fmnist.help").section("Files, JSON and processes", 85)

doc {
  name = "fm.threads",
  sig = "fm.threads() -> integer",
  text = [[
The threads training uses by default: OMP_NUM_THREADS when it is set, else the cores this process
may run on (its affinity mask: taskset, cgroups, Slurm), at most the engine's limit. fit's threads
option overrides it for one call; results are the same for a given seed and thread count.]],
  example = [[
print(fm.threads() >= 1, fm.threads() == require("fmnist.host").build().threads)   --> true true
]],
  see = { "fm.process.cpus", "Model:fit" },
}

doc {
  name = "fm.process",
  sig = "fm.process",
  text = [[
Worker processes and the file operations a search shared between processes and hosts needs,
which Lua's io and os lack: spawn (never through a shell) with an optional channel, poll, this
process and the machine (pid, hostname, cpus, executable, sleep), and files written whole
(write_file), appended in one write (append), folders (mkdir, list). A process object that is
collected or closed while its child runs kills the child and reaps it.]],
  example = [[
local p = fm.process.spawn({"sh", "-c", "exit 3"})
print(p:wait())   --> exited 3
]],
}

doc {
  name = "Process",
  class = "fmnist.Process",
  sig = "Process",
  text = [[
A child started by fm.process.spawn, or the channel fm.process.channel gives a worker. Its channel
(when spawned with channel = true) is a Unix socket: sending to a process that has died is an error
message, not the end of the sender.]],
  example = [[
local p = fm.process.spawn({"true"})
print(tostring(p):match("^fmnist.Process %d+") ~= nil)   --> true
p:wait()
]],
}

doc {
  name = "Process.pid",
  sig = "p.pid",
  text = [[The child's process id (0 for the channel of fm.process.channel, which has no child).]],
  example = [[
local p = fm.process.spawn({"true"})
print(p.pid > 0)   --> true
p:wait()
]],
}

doc {
  name = "Process:send",
  sig = "p:send(data) -> true | nil, message",
  text = [[
Writes data to the channel, all of it; nil and a message when the other end is gone or the channel
is closed.]],
  example = [[
local code = 'local ch = require("fmnist").process.channel(); ch:send("hello " .. ch:receive() .. "\\n")'
local w = fm.process.spawn({fm.process.executable(), "-e", code}, {channel = true})
print(w:send("world\n"))   --> true
print(w:receive())   --> hello world
w:wait()
]],
  see = { "Process:receive", "fm.process.channel" },
}

doc {
  name = "Process:receive",
  sig = "p:receive([n]) -> string | nil",
  text = [[
The next line from the channel without its newline, or with n the next n bytes; waits until they
are there. nil at the end of the channel (a partial line is dropped). Lines and blocks longer than
64 MB are refused.]],
  example = [[
local w = fm.process.spawn({"sh", "-c", "printf 'one\\ntwo\\n' >&3"}, {channel = true})
print(w:receive(), w:receive(), w:receive())   --> one two nil
w:wait()
]],
}

doc {
  name = "Process:wait",
  sig = "p:wait([nohang]) -> \"exited\", code | \"signaled\", number, name | nil",
  text = [[
Waits for the child and says how it ended; with nohang true, returns nil at once while it still
runs. A channel without a child is an error.]],
  example = [[
local p = fm.process.spawn({"sleep", "30"})
print(p:wait(true))   --> nil
p:kill("TERM")
print(p:wait())   --> signaled 15 SIGTERM
]],
}

doc {
  name = "Process:kill",
  sig = "p:kill([signal]) -> boolean",
  text = [[
Sends a signal by name: "TERM" (default), "INT", "KILL", "HUP", "USR1", "USR2" or "QUIT"; false
when the child has already been waited for. Another name is an error listing these.]],
  example = [[
local p = fm.process.spawn({"sleep", "30"})
print(p:kill("KILL"), p:wait())   --> true signaled 9 SIGKILL
]],
}

doc {
  name = "Process:close",
  sig = "p:close()",
  text = [[
Closes this end of the channel: the other side reads the end. The child keeps running (collecting
the object, or a to-be-closed variable going out of scope, kills it).]],
  example = [[
local w = fm.process.spawn({"sh", "-c", "cat <&3 >/dev/null; echo done >&2"}, {channel = true, stderr = "null"})
w:close()
print(w:wait())   --> exited 0
]],
}

doc {
  name = "fm.process.spawn",
  sig = "fm.process.spawn(argv [, opts]) -> Process",
  text = [[
Starts a program with its arguments as given (argv[1] is looked up in PATH when it has no '/'),
never through a shell. stdin is /dev/null unless asked otherwise (a worker never reads the
terminal). With channel = true the child gets one end of a socket pair as file descriptor 3
(FMNIST_CHANNEL_FD says so). A program that cannot start is an error naming it.]],
  options = {
    { "env", "variables to set (strings) or remove (false), over this process's" },
    { "stdin", "\"null\" (default) or \"inherit\"" },
    { "stdout", "\"inherit\" (default) or \"null\"" },
    { "stderr", "\"inherit\" (default) or \"null\"" },
    { "channel", "true: a channel to the child (p:send, p:receive)" },
  },
  example = [[
local p = fm.process.spawn({"sh", "-c", "exit $CODE"}, {env = {CODE = "4"}})
print(p:wait())   --> exited 4
print(pcall(fm.process.spawn, {"/no/such/program"}))   --> false spawn: cannot start '/no/such/program' (No such file or directory)
]],
}

doc {
  name = "fm.process.channel",
  sig = "fm.process.channel() -> Process",
  text = [[
In a process started with channel = true: its end of the channel (p:send, p:receive). The
variable FMNIST_CHANNEL_FD is removed, so that the processes this one starts do not take it for
theirs. Elsewhere an error.]],
  example = [[
print(pcall(fm.process.channel))   --> false channel: FMNIST_CHANNEL_FD is not set (this process was not started with a channel)
]],
  see = { "Process:send" },
}

doc {
  name = "fm.process.poll",
  sig = "fm.process.poll(list, seconds) -> list",
  text = [[
The processes of list whose channel has a whole line to receive (or has ended), waiting up to
seconds (negative: without limit) for one. Returns early, possibly with none, when a signal comes,
so that Ctrl-C reaches the caller.]],
  example = [[
local w = fm.process.spawn({"sh", "-c", "echo ready >&3"}, {channel = true})
local ready = fm.process.poll({w}, 10)
print(#ready, ready[1] == w, w:receive())   --> 1 true ready
w:wait()
]],
}

doc {
  name = "fm.process.hostname",
  sig = "fm.process.hostname() -> string",
  text = [[The name of this host (what a trial's record says it ran on).]],
  example = [[
print(#fm.process.hostname() > 0)   --> true
]],
}

doc {
  name = "fm.process.pid",
  sig = "fm.process.pid() -> integer",
  text = [[This process's id.]],
  example = [[
print(fm.process.pid() > 1)   --> true
]],
}

doc {
  name = "fm.process.cpus",
  sig = "fm.process.cpus() -> integer",
  text = [[The cores this process may run on: its affinity mask (taskset, cgroups' cpusets, Slurm), at least 1.]],
  example = [[
print(fm.process.cpus() >= 1)   --> true
]],
  see = { "fm.threads" },
}

doc {
  name = "fm.process.executable",
  sig = "fm.process.executable() -> path",
  text = [[The running program's file (from /proc/self/exe): what a search starts its workers with.]],
  example = [[
print(fm.process.executable():sub(1, 1))   --> /
]],
}

doc {
  name = "fm.process.sleep",
  sig = "fm.process.sleep(seconds)",
  text = [[Sleeps (0 to 86400 seconds, fractions allowed); a signal ends it early, so that Ctrl-C is not held up.]],
  example = [[
local t0 = fm.clock()
fm.process.sleep(0.01)
print(fm.clock() - t0 >= 0.009)   --> true
]],
}

doc {
  name = "fm.process.write_file",
  sig = "fm.process.write_file(path, data)",
  text = [[
Writes a whole file through a temporary file in the same folder, flushed to disk and renamed over
path: readers (on this host, or over NFS) see the old file or the whole new one, never a part.]],
  example = [[
local path = os.tmpname()
fm.process.write_file(path, "whole\n")
print(io.open(path):read("a"))   --> whole
os.remove(path)
]],
}

doc {
  name = "fm.process.append",
  sig = "fm.process.append(path, data)",
  text = [[
Adds data at the end of a file (made if missing) in one write() on a descriptor opened with
O_APPEND, so that lines appended by several processes of one host do not interleave. (Over NFS,
O_APPEND is not atomic between hosts: one writer per file there.)]],
  example = [[
local path = os.tmpname()
fm.process.append(path, "one\n")
fm.process.append(path, "two\n")
print((io.open(path):read("a"):gsub("\n", " ")))   --> one two
os.remove(path)
]],
}

doc {
  name = "fm.process.mkdir",
  sig = "fm.process.mkdir(path)",
  text = [[Makes a folder; nothing when it is there already; an error when something else is there.]],
  example = [[
local dir = os.tmpname()
os.remove(dir)
fm.process.mkdir(dir)
fm.process.mkdir(dir)
print(#fm.process.list(dir))   --> 0
os.remove(dir)
]],
}

doc {
  name = "fm.process.list",
  sig = "fm.process.list(dir) -> names",
  text = [[The names in a folder (without . and ..), in no particular order; an error naming the folder when it cannot be read.]],
  example = [[
local dir = os.tmpname()
os.remove(dir)
fm.process.mkdir(dir)
fm.process.write_file(dir .. "/a.json", "{}")
print(fm.process.list(dir)[1])   --> a.json
os.remove(dir .. "/a.json")
os.remove(dir)
]],
}
