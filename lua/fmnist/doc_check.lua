-- Help text of the shared argument checks (lua/fmnist/check.lua): see lua/fmnist/help.lua.
local doc = require("fmnist.help").section("Checking arguments", 95, [[
The checks the Lua modules share, for scripts and notebooks of one's own that want the same
errors: one shape, "fname: what was wrong", and option tables read without running their
metamethods.]])

doc {
  name = "fm.check.fail",
  sig = "fm.check.fail(fname, fmt, ...)",
  text = [[Raises the error "fname: " followed by string.format(fmt, ...), without a position.]],
  example = [[
print(pcall(fm.check.fail, "mine", "%d is too big", 7))   --> false mine: 7 is too big
]],
}

doc {
  name = "fm.check.options",
  sig = "fm.check.options(fname, opts, known [, more]) -> opts",
  text = [[
opts itself, or {} when it is nil; an error when it is not a table, or when it has a key that is
not in known (nor in more), listing the known keys in order.]],
  example = [[
print(pcall(fm.check.options, "mine", {sizes = 3}, {size = true, seed = true}))   --> false mine: unknown option 'sizes' (known: seed, size)
]],
}

doc {
  name = "fm.check.integer",
  sig = "fm.check.integer(fname, opts, key, default, lo, hi) -> integer",
  text = [[opts[key] (read raw), or default when it is nil; an error unless it is an integer in [lo, hi].]],
  example = [[
print(fm.check.integer("mine", {}, "size", 8, 1, 64))   --> 8
print(pcall(fm.check.integer, "mine", {size = 2.5}, "size", 8, 1, 64))   --> false mine: option 'size' must be an integer from 1 to 64, got 2.5
]],
}

doc {
  name = "fm.check.number",
  sig = "fm.check.number(fname, opts, key, default, lo, hi) -> number",
  text = [[opts[key] (read raw), or default when it is nil; an error unless it is a number in [lo, hi] (NaN never is).]],
  example = [[
print(fm.check.number("mine", {rate = 0.5}, "rate", 0, 0, 1))   --> 0.5
]],
}

doc {
  name = "fm.check.strings",
  sig = "fm.check.strings(fname, list, what) -> table",
  text = [[A plain copy of a list of strings, read raw (the list's __len and __index are never called); an error naming `what` unless list is a table whose items 1..n are all strings. The commands (fm.cmd_help, fm.cmd_tune, ...) check their arguments with it.]],
  example = [[
print(#fm.check.strings("mine", {"a", "b"}, "names"))   --> 2
print(pcall(fm.check.strings, "mine", {"a", 2}, "names"))   --> false mine: names: item 2 must be a string, got number
]],
}
