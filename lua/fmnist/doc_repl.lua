-- Help text of the module table, the REPL and the tools for people at a terminal
-- (lua/fmnist.c, lua/host.c, lua/fmnist/help.lua, repl.lua, pretty.lua, termimage.lua): see
-- lua/fmnist/help.lua.
local doc = require("fmnist.help").section("Start here", 10, [[
`fmnist-lua` alone opens a REPL with the module loaded as `fm`: type an expression to see its
value, help(x) or ?x for help on anything, ??f for the source of a Lua function, Tab to complete
names. `fmnist-lua notebooks/cnn.lua` runs a notebook; `fmnist-lua -i notebooks/cnn.lua` runs it
and then opens the REPL with everything it made; `fmnist-lua report notebooks/cnn.lua` writes it
up as a report. `fmnist-lua help NAME` prints the help of NAME in a shell.]])

doc {
  name = "help",
  sig = "help([x])   ?x   ??f",
  text = [[
Prints the help of a value (a function, a module, a dataset or model), of a name ("fit",
"Model:fit", "fm.plot.bar"), or, with nothing, the list of every topic. At the prompt, a line
?x is help(x) and ??f shows the Lua source of the function f (the figure functions of the
notebooks, nb.draw.confusion, to copy and change). In a shell: fmnist-lua help NAME.]],
  example = [[
fm.repl.install()   -- what the REPL does when it starts: help is then a global
help "fm.load"
help(fm.zeros)
]],
  see = { "fm.help.text", "fm.help.source" },
}

doc {
  name = "_",
  sig = "_",
  value = false,
  text = [[At the REPL, the value of the last expression shown (its first value).]],
  example = [[
fm.repl.show(fm.tensor{1, 2, 3}:sum())   -- what the REPL does with a value: shows it, keeps it
print(_ * 2)   --> 12.0
]],
}

doc {
  name = "fm",
  sig = "fm = require \"fmnist\"",
  text = [[
The module: tensors, datasets, models, metrics, figures (fm.plot), PNG files (fm.png), the
notebooks' helpers (fm.notebook, fm.explain, fm.report) and the tools here (fm.pretty,
fm.termimage, fm.help). The REPL makes it the global fm; scripts require it. help(fm) lists
everything.]],
  example = [[
local fm = require "fmnist"
print(type(fm.load), type(fm.plot.bar))   --> function function
]],
}

doc {
  name = "fm.version",
  sig = "fm.version",
  text = [[The version of fmnist, a string like "0.1.0".]],
  example = [[
print(fm.version:match("^%d+%.%d+%.%d+$") ~= nil)   --> true
]],
}

doc {
  name = "fm.versions",
  sig = "fm.versions() -> {fmnist, lua, openblas, libpng, zlib}",
  text = [[The versions of fmnist and the libraries it was built with (what `fmnist-lua -v` prints).]],
  example = [[
local v = fm.versions()
print(v.lua:match("^Lua 5%.4") ~= nil, v.openblas:match("OpenBLAS") ~= nil)   --> true true
]],
}

doc {
  name = "fm.clock",
  sig = "fm.clock() -> seconds",
  text = [[
Seconds on a monotonic wall clock, for timing (os.clock adds up the CPU time of all threads,
os.time counts whole seconds).]],
  example = [[
local t0 = fm.clock()
print(fm.clock() - t0 >= 0)   --> true
]],
}

-- ---- values at the prompt ----

local tools = require("fmnist.help").section("Values, help and pictures at the terminal", 80, [[
What the REPL uses to show values and help, which scripts may use too.]])

tools {
  name = "fm.pretty.show",
  sig = "fm.pretty.show(v [, opts]) -> string",
  text = [[
A value written for a person, as the REPL shows it: tables opened up (nested ones indented, short
ones on one line, a list of records with the same fields as aligned columns), a table met again
inside itself marked <cycle: ...>, long lists and big tables cut with a count of what was left
out, functions by their name and signature when help knows them, numbers inside tables with seven
digits, objects through their tostring.]],
  options = {
    { "depth", "levels of tables opened (default 4)" },
    { "items", "entries of a list shown (default 30)" },
    { "keys", "named entries of a table shown (default 40)" },
    { "width", "characters of a line (default 96; the REPL uses the terminal's)" },
    { "lines", "lines in all, 0 for no limit (default 60)" },
    { "quote", "false: a string at the top level as it is, not quoted (default true)" },
  },
  example = [[
print(fm.pretty.show({1, 2, name = "x"}))   --> {1, 2, name = "x"}
local t = {}; t.self = t
print(fm.pretty.show(t))   --> {self = <cycle: root>}
print(fm.pretty.show(fm.load_model))   --> function fm.load_model(path) -> Model
]],
}

tools {
  name = "fm.pretty.quote",
  sig = "fm.pretty.quote(s) -> string",
  text = [[A string as a one-line Lua literal that reads back the same.]],
  example = [[
print(fm.pretty.quote("a\nb"))   --> "a\nb"
]],
}

tools {
  name = "fm.pretty.function_name",
  sig = "fm.pretty.function_name(f) -> string",
  text = [[How the REPL names a function: its help signature, else where it was defined.]],
  example = [[
print(fm.pretty.function_name(fm.zeros))   --> function fm.zeros(d1 [, d2, d3, d4]) -> Tensor or fm.zeros{d1, ...}
]],
}

tools {
  name = "fm.help.show",
  sig = "fm.help.show([x])",
  text = [[Prints help(x) (what the REPL's help is).]],
  example = [[
fm.help.show("Model:fit")
]],
}

tools {
  name = "fm.help.text",
  sig = "fm.help.text(x) -> string",
  text = [[The help of a value or a name, as a string: signature, paragraph, options, example.]],
  example = [[
print(fm.help.text("fm.clock"):match("^[^\n]+"))   --> fm.clock() -> seconds    [Start here]
]],
}

tools {
  name = "fm.help.find",
  sig = "fm.help.find(name) -> {entry, ...}",
  text = [[The help entries whose name is name, or ends with .name or :name, or else contains it.]],
  example = [[
print(fm.help.find("fit")[1].name)   --> Model:fit
]],
}

tools {
  name = "fm.help.get",
  sig = "fm.help.get(name) -> entry | nil",
  text = [[The entry of exactly that name: {name, sig, text, options, example, see, section, ...}.]],
  example = [[
print(fm.help.get("fm.load").sig)   --> fm.load(what [, opts]) -> Dataset
]],
}

tools {
  name = "fm.help.entry_of",
  sig = "fm.help.entry_of(v) -> entry | nil",
  text = [[The entry of a function, module or class table, or of an object (by its class).]],
  example = [[
print(fm.help.entry_of(fm.tensor{1}).name)   --> Tensor
]],
}

tools {
  name = "fm.help.source",
  sig = "fm.help.source(f) -> string",
  text = [[
The Lua source of function f with its file and line (??f at the prompt): from the program for the
modules built into it, else from the file. C functions have none.]],
  example = [[
print(fm.help.source(fm.notebook.plural):match("^%-%- ([%w/._]+)"))   --> lua/fmnist/notebook.lua
]],
}

tools {
  name = "fm.help.section",
  sig = "fm.help.section(name, order, intro) -> doc",
  text = [[
Adds help: returns a function taking one entry {name, sig, text, options, example, needs, see,
class} at a time. Modules add their entries next to their code, or in a lua/fmnist/doc_NAME.lua
file (all of which help loads). An example's lines ending in `--> text` must print that text: the
tests run every example.]],
  example = [[
local doc = fm.help.section("Mine", 200, "My things.")
doc { name = "mine.thing", text = "A thing of mine.", example = "print(1 + 1)   -" .. "-> 2\n" }
print(fm.help.run_example(fm.help.get("mine.thing")))   --> true
]],
}

tools {
  name = "fm.help.entries",
  sig = "fm.help.entries() -> {entry, ...}, {section, ...}",
  text = [[Every entry, sections in order, and the sections.]],
  example = [[
print(#fm.help.entries() > 100)   --> true
]],
}

tools {
  name = "fm.help.members",
  sig = "fm.help.members(class_entry) -> {entry, ...}",
  text = [[The fields (Class.field) and methods (Class:method) of a class's entry.]],
  example = [[
print(#fm.help.members(fm.help.get("Model")) > 10)   --> true
]],
}

tools {
  name = "fm.help.fields",
  sig = "fm.help.fields(class_name) -> {name, ...}",
  text = [[The field names of a class (what Tab completes after model. besides the methods).]],
  example = [[
print(table.concat(fm.help.fields("Dataset"), " "))   --> classes num_classes source
]],
}

tools {
  name = "fm.help.class_entry",
  sig = "fm.help.class_entry(tname | table) -> entry | nil",
  text = [[The class entry of a metatable name ("fmnist.Model") or of a class table.]],
  example = [[
print(fm.help.class_entry("fmnist.Model").name)   --> Model
]],
}

tools {
  name = "fm.help.value_of",
  sig = "fm.help.value_of(entry) -> value | nil",
  text = [[The function or table an entry describes (nil for fields).]],
  example = [[
print(fm.help.value_of(fm.help.get("fm.load")) == fm.load)   --> true
]],
}

tools {
  name = "fm.help.run_example",
  sig = "fm.help.run_example(entry [, env]) -> true | false, message",
  text = [[
Runs an entry's example in a fresh environment (with fm and a recording print) and checks its
`--> text` lines.]],
  example = [[
print(fm.help.run_example(fm.help.get("fm.zeros")))   --> true
]],
}

tools {
  name = "fm.help.markdown",
  sig = "fm.help.markdown() -> string",
  text = [[All the help as Markdown: doc/API.md is `fmnist-lua help --markdown > doc/API.md`.]],
  example = [[
print(fm.help.markdown():match("^# [^\n]+"))   --> # fmnist-lua API
]],
}

tools {
  name = "fm.repl.show",
  sig = "fm.repl.show(...)",
  text = [[How the REPL shows the values of an expression: fm.pretty.show of each, and _ set to the first.]],
  example = [[
fm.repl.show({1, 2})
print(_[2])   --> 2
]],
}

tools {
  name = "fm.repl.complete",
  sig = "fm.repl.complete(text) -> {candidate, ...}",
  text = [[
What Tab offers for a name: globals and keywords, then after . or : the fields and methods of the
value (those of datasets and models too, from help), and the modules fm loads on first use
(fm.plot before it is touched); never metamethods.]],
  example = [[
print(table.concat(fm.repl.complete("string.up"), " "))   --> string.upper
]],
}

tools {
  name = "fm.repl.help_line",
  sig = "fm.repl.help_line(text [, source])",
  text = [[What a prompt line ?text (or ??text, source = true) does: help of the value text names, or of the name.]],
  example = [[
fm.repl.help_line("Model:save")
]],
}

tools {
  name = "fm.repl.install",
  sig = "fm.repl.install()",
  text = [[Sets the REPL's globals (help); the REPL calls it when it starts.]],
  example = [[
fm.repl.install()
print(type(help))   --> function
]],
}

tools {
  name = "fm.repl.banner",
  sig = "fm.repl.banner()",
  text = [[Prints what the REPL's banner adds: how to get help, and the values a notebook left (nb).]],
  example = [[
fm.repl.banner()
]],
}

tools {
  name = "fm.termimage.image",
  sig = "fm.termimage.image(t [, opts]) -> string",
  text = [[
One image for a plain terminal: each character is two pixels (an upper half block, its top pixel
in the foreground colour and its bottom one in the background), in 24-bit colour when COLORTERM
says so, else the 256-colour palette, else characters of growing ink (NO_COLOR, TERM=dumb).
io.write it.]],
  options = {
    { "palette", "a name in fm.plot.PALETTES: gray (default), gray_r, magma, viridis, blues, diverging" },
    { "range", "{low, high} of the colour scale (default [0, 1] when the values fit)" },
    { "colors", "\"24bit\", \"256\" or \"none\" (default: from the environment)" },
    { "scale", "characters per pixel across (default 2 when it fits)" },
    { "width", "the columns to fit in (default the terminal's)" },
  },
  example = [[
local s = fm.termimage.image(fm.tensor{{0, 1}, {1, 0}}, {colors = "24bit", scale = 1})
print(s:find("\u{2580}") ~= nil)   --> true
]],
}

tools {
  name = "fm.termimage.images",
  sig = "fm.termimage.images(list [, opts]) -> string",
  text = [[
Images side by side, as many as fit the terminal's width a row, each with its caption under it (a
caption's lines one under the other, each cut to the image's width).]],
  options = {
    { "captions", "a caption per image" },
    { "cols", "images per row" },
    { "palette", "as for image" },
    { "range", "as for image, shared by all" },
    { "colors", "as for image" },
    { "scale", "as for image (default 1)" },
    { "width", "as for image" },
  },
  example = [[
local s = fm.termimage.images({fm.zeros(4, 4), fm.ones(4, 4)}, {captions = {"a", "b"}, colors = "none"})
print(s:match("([^\n]+)\n$"))   --> a    b
]],
}

tools {
  name = "fm.termimage.heatmap",
  sig = "fm.termimage.heatmap(m [, opts]) -> string",
  text = [[
A matrix as coloured cells with its values written in them, row labels on the left, column
numbers above and their names listed under: a confusion matrix that reads in a terminal.
fm.plot.heatmap draws with it when there is no file and no sixel.]],
  options = {
    { "labels", "names of the rows and columns" },
    { "row_labels", "names of the rows" },
    { "col_labels", "names of the columns" },
    { "palette", "blues (default) or another" },
    { "range", "{low, high} of the colours" },
    { "digits", "decimals of the values (default 0 for whole numbers, else 2)" },
    { "colors", "as for image" },
  },
  example = [[
local s = fm.termimage.heatmap(fm.tensor{{9, 1}, {2, 8}}, {labels = {"Coat", "Shirt"}, colors = "none"})
print(s:match("\n([^\n]+)"))   --> Coat 9 1
]],
}

tools {
  name = "fm.termimage.sixel",
  sig = "fm.termimage.sixel(t [, opts]) -> string",
  text = [[One image as sixel graphics (for terminals that show them: xterm -ti vt340, mlterm, foot, WezTerm).]],
  options = {
    { "palette", "as for image" },
    { "range", "as for image" },
    { "scale", "pixels per image pixel (default 4)" },
  },
  example = [[
local s = fm.termimage.sixel(fm.ones(6, 6), {scale = 1})
print(s:sub(2, 7), s:sub(-1) == "\\")   --> P0;1;0 true
]],
}

tools {
  name = "fm.termimage.show",
  sig = "fm.termimage.show(x [, opts])",
  text = [[
Draws an image (a tensor) or a grid (a list) on stdout: sixel when asked for (opts.sixel = true,
or FMNIST_PLOT=sixel) and the terminal answers the device-attributes query with sixel support;
else text blocks — and then says on stderr, once, that sixel was asked for but the terminal does
not show it.]],
  options = {
    { "sixel", "true: sixel if the terminal can (default: FMNIST_PLOT=sixel)" },
    { "palette", "as for image" }, { "range", "as for image" }, { "colors", "as for image" },
    { "scale", "as for image" }, { "captions", "for a list" },
  },
  example = [[
fm.termimage.show(fm.zeros(2, 2), {colors = "none", sixel = false})
]],
}

tools {
  name = "fm.termimage.colour",
  sig = "fm.termimage.colour(palette, lo, hi, v) -> r, g, b",
  text = [[The colour (0..255 each) of value v through a palette over [lo, hi]; nothing for NaN.]],
  example = [[
print(fm.termimage.colour("gray", 0, 1, 0.5))   --> 128 128 128
]],
}

tools {
  name = "fm.termimage.xterm256",
  sig = "fm.termimage.xterm256(r, g, b) -> index",
  text = [[The nearest colour of the 256-colour palette: of its 6x6x6 cube or of its 24 greys.]],
  example = [[
print(fm.termimage.xterm256(255, 0, 0), fm.termimage.xterm256(128, 128, 128))   --> 196 244
]],
}

tools {
  name = "fm.termimage.colors",
  sig = "fm.termimage.colors() -> \"24bit\" | \"256\" | \"none\"",
  text = [[The colours the terminal takes, from COLORTERM, NO_COLOR and TERM.]],
  example = [[
local c = fm.termimage.colors()
print(c == "24bit" or c == "256" or c == "none")   --> true
]],
}

tools {
  name = "fm.termimage.columns",
  sig = "fm.termimage.columns() -> integer",
  text = [[
The width of the terminal in characters: its size when standard output is one, else COLUMNS,
else 80. What images and grids are fitted to.]],
  example = [[
print(fm.termimage.columns() >= 1)   --> true
]],
}

tools {
  name = "fm.termimage.sixel_wanted",
  sig = "fm.termimage.sixel_wanted(requested) -> boolean",
  text = [[
Whether to draw with sixel: true when requested and the terminal says it shows sixel
(sixel_supported); when requested and it does not, false and, the first time, a line on stderr
saying why (a terminal without sixel would show nothing, or garbage). fm.plot and show ask it
when FMNIST_PLOT=sixel.]],
  example = [[
print(fm.termimage.sixel_wanted(false))   --> false
]],
}

tools {
  name = "fm.termimage.sixel_supported",
  sig = "fm.termimage.sixel_supported() -> boolean",
  text = [[
Whether the terminal shows sixel: asked once with ESC [ c (primary device attributes), whose
answer lists 4 when it does; false without a terminal or outside fmnist-lua.]],
  example = [[
print(type(fm.termimage.sixel_supported()))   --> boolean
]],
}

local host = require("fmnist.help").section("The program's own module", 90, [[
`require "fmnist.host"` exists inside fmnist-lua only (a stock lua5.4 lacks it): what the program
does that a Lua module cannot.]])

host {
  name = "host.capture_start",
  sig = "require(\"fmnist.host\").capture_start([echo])",
  text = [[
From now on everything written to file descriptors 1 and 2 — print, io.write, C code's stdout and
stderr (fit's progress), child processes — goes, in order, into a pipe read by a thread that keeps
it (and copies it to the real stdout with echo). fmnist.capture is the Lua side; the cells of a
report use it.]],
  example = [[
local host = require "fmnist.host"
host.capture_start(false)
io.stderr:write("to stderr\n")
io.write("to stdout\n")
print((host.capture_stop():gsub("\n", "|")))   --> to stderr|to stdout|
]],
}

host {
  name = "host.capture_take",
  sig = "host.capture_take() -> string",
  text = [[What was written since capture_start or the last take.]],
  example = [[
local host = require "fmnist.host"
host.capture_start(false)
io.write("a")
local a = host.capture_take()
io.write("b")
local b = host.capture_stop()
print(a, b)   --> a b
]],
}

host {
  name = "host.capture_stop",
  sig = "host.capture_stop() -> string",
  text = [[Puts file descriptors 1 and 2 back and returns what was written since the last take ("" when not capturing).]],
  example = [[
print(require("fmnist.host").capture_stop() == "")   --> true
]],
}

host {
  name = "host.capture_active",
  sig = "host.capture_active() -> boolean",
  text = [[Whether a capture is running.]],
  example = [[
print(require("fmnist.host").capture_active())   --> false
]],
}

host {
  name = "host.terminal_query",
  sig = "host.terminal_query(seq, final [, seconds]) -> string | nil",
  text = [[
Sends an escape sequence to the terminal (/dev/tty) with echo off and reads its answer up to a
byte of `final`, within `seconds` (0.5); nil without a terminal or an answer.]],
  example = [[
local answer = require("fmnist.host").terminal_query("\27[c", "c", 0.2)
print(answer == nil or answer:sub(1, 2) == "\27[")   --> true
]],
}

host {
  name = "host.terminal_size",
  sig = "host.terminal_size() -> columns, rows, xpixels, ypixels | nil",
  text = [[The size of the terminal, or nil when there is none.]],
  example = [[
local cols = require("fmnist.host").terminal_size()
print(cols == nil or cols > 0)   --> true
]],
}

host {
  name = "host.isatty",
  sig = "host.isatty(fd) -> boolean",
  text = [[Whether a file descriptor is a terminal (for 1 and 2 while captured: where they really go).]],
  example = [[
print(type(require("fmnist.host").isatty(1)))   --> boolean
]],
}

host {
  name = "host.build",
  sig = "host.build() -> {compiler, threads, openmp, git, sanitizer}",
  text = [[
Facts of the program: the compiler that built it, the threads training uses (OMP_NUM_THREADS or
all cores), the OpenMP version, and the git commit when the build recorded it.]],
  example = [[
local b = require("fmnist.host").build()
print(b.threads >= 1, type(b.compiler))   --> true string
]],
}

host {
  name = "host.module_source",
  sig = "host.module_source(name) -> string | nil",
  text = [[The text of a Lua module built into the program (lua/fmnist/NAME.lua), for ??f.]],
  example = [[
print(require("fmnist.host").module_source("pretty"):match("^%-%- (fmnist%.pretty)"))   --> fmnist.pretty
]],
}
