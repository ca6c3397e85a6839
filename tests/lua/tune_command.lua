-- tune_command.lua: runs `fmnist-lua tune ARGS...` as the host's command dispatch does
-- (require "fmnist.cmd_tune", call it with the words, exit with its status), for a host whose
-- dispatch does not find the command: fmnist-lua tests/lua/tune_command.lua ARGS...
require "fmnist"
local status = require("fmnist.cmd_tune")({ ... })
io.stdout:flush()
os.exit(math.type(status) == "integer" and status or (status == false and 1 or 0), true)
