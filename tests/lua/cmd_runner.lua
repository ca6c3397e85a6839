-- cmd_runner.lua: runs an embedded command module as `fmnist-lua COMMAND ARGS...` does
-- (lua/host.c's run_command): fmnist-lua tests/lua/cmd_runner.lua COMMAND ARGS...
-- The command's function gets the words after COMMAND; its result becomes the exit status
-- (an integer as it is, false as 1, anything else as 0).
require "fmnist"
local command = require("fmnist.cmd_" .. assert(arg[1], "usage: cmd_runner.lua COMMAND [ARGS]"))
local status = command({ table.unpack(arg, 2) })
io.stdout:flush()
if math.type(status) == "integer" then os.exit(status) end
os.exit(status ~= false)
