-- fmnist.pretty: how the REPL shows values — tables opened up and cut, cycles marked, records as
-- columns, functions by their help name, objects through tostring — and its option errors.
local T = require "testlib"
local fm = require "fmnist"
local P = require "fmnist.pretty"

T.eq(P.show({ 1, 2, 3 }), "{1, 2, 3}", "a short list on one line")
T.eq(P.show({}), "{}", "an empty table")
T.eq(P.show({ b = 1, a = "x", [3] = true, 1 }), '{1, [3] = true, a = "x", b = 1}',
  "the list part first, then other keys in order: numbers, then names alphabetically")
T.eq(P.show({ ["a b"] = 1, ["end"] = 2 }), '{["a b"] = 1, ["end"] = 2}',
  "keys that are not names (or are keywords) in brackets")
T.eq(P.show({ s = "x\ny\t\"z\"\0" }), '{s = "x\\ny\\t\\"z\\"\\000"}', "strings inside tables quoted on one line")
T.eq(P.show("line one\nline two", { quote = false }), "line one\nline two", "a string alone, unquoted")
T.eq(P.show({ 1 / 3, 2.0, 1e20, 0 / 0 }), "{0.3333333, 2.0, 1e+20, nan}",
  "numbers inside tables with seven digits, floats still look like floats")
T.eq(P.show(1 / 3), tostring(1 / 3), "a number alone with all its digits")

-- cycles
local t = { name = "root" }
t.self = t
t.child = { up = t }
t.child.me = t.child
T.eq(P.show(t), '{child = {me = <cycle: root.child>, up = <cycle: root>}, name = "root", self = <cycle: root>}',
  "a table met again inside itself is marked with the path where it was shown")
local shared = { 1 }
T.eq(P.show({ a = shared, b = shared }), "{a = {1}, b = {1}}", "a table shared but not cyclic is shown twice")

-- cutting
local long = {}
for i = 1, 100 do long[i] = i end
local shown = P.show(long)
T.ok(shown:find("30,\n") and shown:find("... (70 more items)", 1, true) and not shown:find("31,", 1, true),
  "a long list: 30 items, then how many were left out")
T.ok(P.show(long, { items = 5 }):find("... (95 more items)", 1, true), "items sets how many")
local deep = { { { { { { 1 } } } } } }
T.eq(P.show(deep), "{{{{{...} (1 items)}}}}", "tables deeper than depth are not opened")
local many = {}
for i = 1, 200 do many[i] = { i } end
local text = P.show(many, { lines = 10, items = 200 })
local _, nl = text:gsub("\n", "")
T.ok(nl == 10 and text:find("more lines: pretty.show(x, {lines = 0}) shows all)", 1, true),
  "the whole text is cut at `lines` lines, saying how to see all")
local keys = {}
for i = 1, 60 do keys["k" .. ("%02d"):format(i)] = i end
T.ok(P.show(keys):find("... (20 more keys)", 1, true), "big tables: 40 named entries, then a count")

-- records as columns
local h = {}
for e = 1, 3 do h[e] = { epoch = e, loss = 1 / e, name = "x" } end
h.epochs = 3
T.eq(P.show(h), table.concat({
  "{",
  "  -- #  epoch       loss  name",
  "     1      1        1.0   \"x\"",
  "     2      2        0.5   \"x\"",
  "     3      3  0.3333333   \"x\"",
  "  epochs = 3,",
  "}" }, "\n"), "a list of records with the same fields as aligned columns")

-- functions and objects
T.eq(P.show(fm.load), "function fm.load(what [, opts]) -> Dataset", "a function help knows: its signature")
T.eq(P.show(fm.plot.bar), "function fm.plot.bar(values [, opts]) -> path", "a lazily loaded module's function too")
local function mine() end
T.ok(P.show(mine):match("^function <.*test_pretty%.lua:%d+>$"), "a Lua function help does not know: where it is")
T.eq(P.show(print), "function: builtin", "a C function help does not know")
local z = fm.zeros(2, 2)
T.eq(P.show(z), tostring(z), "a tensor alone through its own tostring")
T.eq(P.show({ w = z }), "{w = [fmnist.Tensor of size 2x2]}", "a tensor inside a table: its one-line form")
local broken = setmetatable({}, { __tostring = function() error("boom") end })
T.ok(P.show(broken):find("__tostring failed", 1, true), "a failing __tostring is shown, not raised")

-- options
T.err("pretty.show: unknown option 'colour' (known: depth, items, keys, lines, quote, width)",
  P.show, 1, { colour = true })
T.err("option 'depth' must be a whole number of at least 0, got -1", P.show, 1, { depth = -1 })
T.err("option 'quote' must be a boolean, got string", P.show, 1, { quote = "no" })
T.err("options must be a table, got number", P.show, 1, 5)
T.eq(P.quote("a\nb"), '"a\\nb"', "quote: one line that reads back")
T.eq(load("return " .. P.quote("\1\255\"\\"))(), "\1\255\"\\", "quote reads back byte for byte")

T.done()
