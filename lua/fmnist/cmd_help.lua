-- fmnist.cmd_help: the command `fmnist-lua help`, the REPL's help in a shell.
--
--   fmnist-lua help                 the list of topics
--   fmnist-lua help NAME ...        the help of each name (fit, Model:fit, fm.plot.bar, ...)
--   fmnist-lua help --markdown      all of it as Markdown: doc/API.md
--
-- Exit status 1 when a name has no help.
local help = require "fmnist.help"

return function(args)
  args = require("fmnist.check").strings("fmnist-lua help", args, "the arguments")
  if #args == 0 then
    help.show()
    return 0
  end
  if args[1] == "--markdown" then
    if #args > 1 then
      io.stderr:write("fmnist-lua help: --markdown takes nothing after it\n")
      return 1
    end
    io.write(help.markdown(), "\n")
    return 0
  end
  if args[1] == "-h" or args[1] == "--help" then
    print("usage: fmnist-lua help [NAME ...]   the help of each name (help alone lists the topics)")
    print("       fmnist-lua help --markdown   all of it as Markdown (doc/API.md)")
    return 0
  end
  local status = 0
  for i, name in ipairs(args) do
    if i > 1 then print() end
    if #help.find(name) == 0 then
      io.stderr:write(("fmnist-lua help: no help for '%s' (fmnist-lua help lists the topics)\n"):format(name))
      status = 1
    else
      help.show(name)
    end
  end
  return status
end
