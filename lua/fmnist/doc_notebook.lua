-- Help text of the notebooks, their reports and the report command (lua/fmnist/notebook.lua,
-- report.lua, capture.lua, cmd_report.lua): see lua/fmnist/help.lua.
local doc = require("fmnist.help").section("Notebooks and reports", 70, [[
A notebook (notebooks/*.lua) is a script of cells: each runs as it comes, timed, with what it
prints, the tables and figures it makes and any error kept. A failed cell is reported and the rest
runs, except the cells that need what it did not make. The values cells assign to globals stay:
`fmnist-lua -i notebooks/cnn.lua` opens the REPL on them. `--report DIR` (or `fmnist-lua report`)
writes everything up as DIR/index.html and DIR/index.md.]])

doc {
  name = "fmnist-lua report",
  sig = "fmnist-lua report [-o DIR] NOTEBOOK.lua [ARGS...] [NOTEBOOK.lua [ARGS...] ...]",
  text = [[
Runs notebooks and writes DIR/index.html — one self-contained file with the figures inside, no
network, printable — and DIR/index.md with the figures beside it. Each records the command line,
date, versions of fmnist, Lua, gnuplot, OpenBLAS, libpng and zlib, the git commit, compiler, CPU
and its SIMD flags, threads, seeds, every notebook's parameters (defaults and what was given), the
dataset files with their sha256, and each cell's output, tables, figures, time and errors. DIR is
out/report/NAME for one notebook, out/report for several (each then writes into DIR/NAME). Exit
status 0, 1 when a cell failed, 130 after Ctrl-C (the report is written all the same).
notebooks/report.lua runs the whole analysis this way.]],
  example = [[
-- in a shell:
--   fmnist-lua report notebooks/cnn.lua --quick -o out/cnn-report
--   fmnist-lua notebooks/report.lua --quick        (everything, into out/report)
print(type(require("fmnist.cmd_report")))   --> function
]],
}

doc {
  name = "fm.notebook.new",
  sig = "fm.notebook.new(name, arg [, spec]) -> Notebook | nil",
  text = [[
Starts a notebook: reads its command line (arg) — [outdir] --out DIR --epochs N --seed N --quick
--format png|svg|pdf --report DIR --cells LIST --list --help, and spec.options of its own — and
prints its title. Returns nil after --help (which prints the usage); unknown options are errors
naming them. Its globals are those of the calling script.]],
  options = {
    { "title", "the title (the report's too)" },
    { "about", "a paragraph for --help and the report" },
    { "options", "options of its own: {name =, kind = \"int\"|\"number\"|\"string\"|\"flag\"|\"choice\", arg =, help =, default =, default_text =, choices =}" },
    { "omit", "names of the common options it has no use for, e.g. {\"epochs\"}" },
  },
  example = [[
local nb = fm.notebook.new("demo", {"--list"}, {title = "A demo"})
nb:cell("One", function() end)
nb:finish()   -- --list: lists the cells, runs none
print(#nb.cells, nb.cells[1].status)   --> 1 not run
]],
  see = { "Notebook", "Notebook:cell" },
}

doc {
  name = "Notebook",
  class = "fm.notebook.Notebook",
  sig = "nb (a Notebook)",
  text = [[
What fm.notebook.new returns. The notebooks keep it in the global nb, so after
`fmnist-lua -i notebooks/X.lua` nb:status() lists the cells, nb:run(n) runs one again and
nb.draw holds the figure functions.]],
  example = [[
local nb = fm.notebook.new("demo", {"--list"})
print(getmetatable(nb) == fm.notebook.Notebook)   --> true
]],
}

doc {
  name = "Notebook.o",
  sig = "nb.o",
  text = [[
The options of the run: outdir, seed, epochs (nil: the model's own), quick, format, report,
cells, the notebook's own, and given (the options given on the command line).]],
  example = [[
local nb = fm.notebook.new("demo", {"--seed", "5", "--list"})
print(nb.o.seed, nb.o.given.seed, nb.o.format)   --> 5 true png
]],
}

doc {
  name = "Notebook.cells",
  sig = "nb.cells",
  text = [[
The cells so far: {n, title, status ("ok", "failed", "skipped", "interrupted", "not run"),
seconds, items (output, tables, figures, errors), defined (the globals it set), reason}.]],
  example = [[
local nb = fm.notebook.new("demo", {"--list"})
nb:cell("First", function() end)
print(nb.cells[1].n, nb.cells[1].title)   --> 1 First
]],
}

doc {
  name = "Notebook.figs",
  sig = "nb.figs",
  text = [[The notebook's figures: figs:path(name) (in the output folder, the extension following --format), figs:add(path, what), figs.list.]],
  example = [[
local dir = os.tmpname(); os.remove(dir)
local nb = fm.notebook.new("demo", {dir, "--format", "svg"})
print(nb.figs:path("loss.png") == dir .. "/loss.svg")   --> true
os.execute("rm -rf '" .. dir .. "'")
]],
}

doc {
  name = "Notebook.draw",
  sig = "nb.draw",
  text = [[
The figure functions the notebook calls for the figures every model notebook has: learning_curves,
confusion and prediction_grids (fm.notebook.draw). Replace one for this notebook by assigning it;
??nb.draw.confusion shows the code to start from.]],
  example = [[
local nb = fm.notebook.new("demo", {"--list"})
nb.draw.confusion = function(result, classes, title, figs) print("my own confusion figure") end
print(nb.draw.confusion ~= fm.notebook.draw.confusion, nb.draw.learning_curves == fm.notebook.draw.learning_curves)   --> true true
]],
}

doc {
  name = "Notebook.values",
  sig = "nb.values",
  text = [[The names of the globals the cells set (a set: name = true).]],
  example = [[
local nb = fm.notebook.new("demo", {"--cells", "1"})
nb:cell("Make x", function() demo_x = 1 end)
print(nb.values.demo_x)   --> true
demo_x = nil
]],
}

doc {
  name = "Notebook.session",
  sig = "nb.session",
  text = [[The report being made (--report or fmnist-lua report): {dir, notebooks, argv, date, ...}; nil otherwise.]],
  example = [[
print(fm.notebook.new("demo", {"--list"}).session)   --> nil
]],
}

doc {
  name = "Notebook.parameters",
  sig = "nb.parameters",
  text = [[Every option with its value, its default and whether it was given: what the report lists.]],
  example = [[
local nb = fm.notebook.new("demo", {"--seed", "3", "--list"})
for _, p in ipairs(nb.parameters) do if p.name == "seed" then print(p.value, p.default, p.given) end end   --> 3 1 true
]],
}

doc {
  name = "Notebook:cell",
  sig = "nb:cell(title [, opts], fn)",
  text = [[
Declares a cell and runs it now: a numbered heading, then fn(), timed; its output (with a report:
everything written to stdout and stderr, in order), its tables and figures and any error are kept.
An error is reported (the rest of the notebook runs); a cell needing a global that is nil
(opts.needs) is skipped, as is one failing on a global a failed cell was to make. Ctrl-C in a cell
stops the notebook; the cells after it are "not run".]],
  options = { { "needs", "names of globals the cell needs: when one is nil it is skipped" } },
  example = [[
local nb = fm.notebook.new("demo", {"--cells", "1-3"})
nb:cell("Works", function() demo_y = 2 end)
nb:cell("Fails", function() error("no luck") end)
nb:cell("Needs z", {needs = {"demo_z"}}, function() end)
print(nb.cells[1].status, nb.cells[2].status, nb.cells[3].status)   --> ok failed skipped
demo_y = nil
]],
}

doc {
  name = "Notebook:run",
  sig = "nb:run([which])",
  text = [[
Runs a cell again — by number or by part of its title — or, with nothing, the cells not run yet
(after --cells): for the REPL.]],
  example = [[
local nb = fm.notebook.new("demo", {"--cells", "1"})
nb:cell("One", function() end)
nb:cell("Two", function() demo_two = true end)
nb:run()
print(nb.cells[2].status, demo_two)   --> ok true
demo_two = nil
]],
}

doc {
  name = "Notebook:status",
  sig = "nb:status()",
  text = [[Prints the cells: number, title, status, seconds and the globals each set.]],
  example = [[
local nb = fm.notebook.new("demo", {"--cells", "1"})
nb:cell("One", function() end)
nb:status()
]],
}

doc {
  name = "Notebook:failed",
  sig = "nb:failed() -> {label, ...}",
  text = [[The cells that failed or were interrupted, as "cell 2 'Train the CNN'".]],
  example = [[
local nb = fm.notebook.new("demo", {"--cells", "1"})
nb:cell("Bad", function() error("no") end)
print(nb:failed()[1])   --> cell 1 'Bad'
]],
}

doc {
  name = "Notebook:set_option",
  sig = "nb:set_option(name, value [, why])",
  text = [[
Changes an option after the command line was read, so that nb.o and the parameters in the report
agree; why says what changed it.]],
  example = [[
local nb = fm.notebook.new("demo", {"--list"})
nb:set_option("seed", 9, "chosen later")
print(nb.o.seed, nb.parameters[3].value, nb.parameters[3].note)   --> 9 9 chosen later
]],
}

doc {
  name = "Notebook:finish",
  sig = "nb:finish()",
  text = [[
Ends the notebook: prints the cells with their times, writes the report when --report asked for
one, and raises an error (without a traceback) when a cell failed or Ctrl-C stopped it, so that
the exit status says so.]],
  example = [[
local nb = fm.notebook.new("demo", {"--cells", "1"})
nb:cell("Bad", function() error("no") end)
print(tostring(select(2, pcall(nb.finish, nb))))   --> demo.lua: 1 of 1 cells failed: cell 1 'Bad'
]],
}

doc {
  name = "Notebook:report",
  sig = "nb:report([dir]) -> html, md",
  text = [[
Writes the report of what ran so far into dir (--report's folder, else the output folder): for
the REPL after changing something. Cell output is only there when the cells ran for a report.]],
  example = [[
local dir = os.tmpname(); os.remove(dir)
local nb = fm.notebook.new("demo", {dir, "--cells", "1"})
nb:cell("Table", function() nb:table({{"x", "%d"}}, {{1}, {2}}) end)
local html = nb:report()
print(html == dir .. "/index.html")   --> true
os.execute("rm -rf '" .. dir .. "'")
]],
}

doc {
  name = "Notebook:banner",
  sig = "nb:banner() -> string",
  text = [[What the REPL says after the notebook ran (fmnist-lua -i): the cells and the globals they made.]],
  example = [[
local nb = fm.notebook.new("demo", {"--cells", "1"})
nb:cell("Make", function() demo_w = 1 end)
print(nb:banner():match("globals: ([%w_]+)"))   --> demo_w
demo_w = nil
]],
}

doc {
  name = "Notebook:data",
  sig = "nb:data() -> fit, val, test",
  text = [[
The training set split 90/10 (stratified, seed nb.o.seed) into the images trained on and the
validation images, and the test set; with --quick a stratified 2,000 and 500 of them.]],
  example = [[
local nb = fm.notebook.new("demo", {"--quick", "--list"})
local fit, val, test = nb:data()
print(#fit, #val, #test)   --> 1800 200 500
]],
  needs = "dataset",
}

doc {
  name = "Notebook:train",
  sig = "nb:train(model, fit, val [, fit_opts]) -> history, seconds",
  text = [[
The model's summary, the training settings (defaults and what was given), training with the
progress on stderr, then the table of epochs. Ctrl-C during training stops it after the current
batch and the notebook goes on with the model as it is: the history has the complete epochs and
history.stopped says it was interrupted.]],
  example = [[
local nb = fm.notebook.new("demo", {"--quick", "--list"})
local fit, val = nb:data()
local h, seconds = nb:train(fm.LogReg{}, fit:subset(1, 200), val:subset(1, 50), {verbose = false})
print(#h, seconds >= 0)   --> 1 true
]],
  needs = "dataset",
}

doc {
  name = "Notebook:evaluate",
  sig = "nb:evaluate(model, test, title) -> result",
  text = [[
The classification report on the test set (a table in the report), then nb.draw's confusion
matrices and grids of right and wrong predictions.]],
  example = [[
local dir = os.tmpname(); os.remove(dir)
local nb = fm.notebook.new("demo", {dir, "--quick"})
local r = nb:evaluate(fm.LogReg{}, fm.load("test"):subset(1, 100), "LogReg")
print(r.n, #nb.figs.list)   --> 100 4
os.execute("rm -rf '" .. dir .. "'")
]],
  needs = { "dataset", "gnuplot" },
}

doc {
  name = "Notebook:save_model",
  sig = "nb:save_model(model [, info]) -> path",
  text = [[Saves the model as OUTDIR/NAME.fmn with info (and the seed and --quick) in model.info.]],
  example = [[
local dir = os.tmpname(); os.remove(dir)
local nb = fm.notebook.new("demo", {dir})
local path = nb:save_model(fm.LogReg{}, {note = "x"})
print(fm.load_model(path).info.note)   --> x
os.execute("rm -rf '" .. dir .. "'")
]],
}

doc {
  name = "Notebook:path",
  sig = "nb:path(name) -> path",
  text = [[Where a figure goes: in the output folder, its extension following --format.]],
  example = [[
local nb = fm.notebook.new("demo", {"/tmp/x", "--format", "pdf", "--list"})
print(fm.notebook.figures("/tmp/x", "pdf"):path("a.png"))   --> /tmp/x/a.pdf
]],
}

doc {
  name = "Notebook:figure",
  sig = "nb:figure(path, what) -> path",
  text = [[Lists a figure a cell wrote (fm.plot.* returns the path) and keeps it for the report.]],
  example = [[
local dir = os.tmpname(); os.remove(dir)
local nb = fm.notebook.new("demo", {dir})
nb:figure(fm.plot.bar({1, 2}, {file = nb:path("bars.png")}), "two bars")
print(#nb.figs.list)   --> 1
os.execute("rm -rf '" .. dir .. "'")
]],
  needs = "gnuplot",
}

doc {
  name = "Notebook:table",
  sig = "nb:table(columns, rows [, opts])",
  text = [[
Prints a table under aligned headers and keeps it for the report (an HTML or Markdown table).
A column is {title, format [, volatile = true]}: a format ending in s is left-aligned, others
right-aligned; volatile marks values that change from run to run (times). A nil value prints "-".]],
  options = {
    { "caption", "the table's name in the report" },
    { "text", "print this text instead (a layout of its own); the report still has the table" },
  },
  example = [[
fm.notebook.table({{"model", "%s"}, {"accuracy", "%.3f"}}, {{"LogReg", 0.849}, {"CNN", 0.921}})
]],
}

doc {
  name = "Notebook:say",
  sig = "nb:say(text)",
  text = [[Prints a paragraph of explanation, which the report shows as prose rather than as output.]],
  example = [[
fm.notebook.say("The CNN looks at edges first.")
]],
}

local function fn(name, sig, text, example, needs)
  doc { name = "fm.notebook." .. name, sig = sig, text = text, example = example, needs = needs }
end

fn("options", "fm.notebook.options(name, argv [, extra [, omit [, about]]]) -> o | nil", [[
A notebook's command line, checked: what fm.notebook.new reads (see it). Unknown options, bad
numbers and a second output folder are errors naming them.]], [[
local o = fm.notebook.options("cnn", {"figs/", "--epochs=3", "--seed", "9"})
print(o.outdir, o.epochs, o.seed)   --> figs 3 9
]])
fn("data", "fm.notebook.data(o) -> fit, val, test", [[What nb:data does, for options o.]], [[
local fit, val, test = fm.notebook.data({seed = 1, quick = true})
print(#fit + #val, #test)   --> 2000 500
]], "dataset")
fn("train", "fm.notebook.train(model, fit, val, o [, fit_opts]) -> history, seconds", [[What nb:train does, for options o.]], [[
local ds = fm.load("test"):subset(1, 200)
local h = fm.notebook.train(fm.LogReg{}, ds, ds, {seed = 1, epochs = 1}, {verbose = false})
print(h.epochs)   --> 1
]], "dataset")
fn("evaluate", "fm.notebook.evaluate(model, test, title, figs, o [, draw]) -> result", [[What nb:evaluate does.]], [[
local figs = fm.notebook.figures(os.tmpname() .. "-dir")
local r = fm.notebook.evaluate(fm.LogReg{}, fm.load("test"):subset(1, 100), "LogReg", figs, {seed = 1})
print(r.n, #figs.list)   --> 100 4
os.execute("rm -rf '" .. figs.dir .. "'")
]], { "dataset", "gnuplot" })
fn("save_model", "fm.notebook.save_model(model, o [, info]) -> path", [[What nb:save_model does.]], [[
local dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p '" .. dir .. "'")
print(fm.load_model(fm.notebook.save_model(fm.LogReg{}, {outdir = dir, name = "m", seed = 1})).info.seed)   --> 1
os.execute("rm -rf '" .. dir .. "'")
]])
fn("table", "fm.notebook.table(columns, rows [, opts])", [[What nb:table does.]], [[
fm.notebook.table({{"n", "%d"}}, {{1}, {2}})
]])
fn("say", "fm.notebook.say(text)", [[What nb:say does.]], [[
fm.notebook.say("A word.")
]])
fn("figures", "fm.notebook.figures(outdir [, format]) -> figs", [[
A list of figures in a folder (made if missing): figs:path(name) (extension following format),
figs:add(path, what), figs:section(title), figs.prefix, figs.quiet, figs.list.]], [[
local figs = fm.notebook.figures("/tmp", "svg")
print(figs:path("a.png"))   --> /tmp/a.svg
]])
fn("plural", "fm.notebook.plural(n, word) -> string", [["1 epoch", "12 epochs".]], [[
print(fm.notebook.plural(1, "epoch"), fm.notebook.plural(2, "map"))   --> 1 epoch 2 maps
]])
fn("model_path", "fm.notebook.model_path(dir, name) -> path", [[Where a notebook's model is saved: DIR/NAME/NAME.fmn.]], [[
print(fm.notebook.model_path("out", "cnn"))   --> out/cnn/cnn.fmn
]])
fn("exists", "fm.notebook.exists(path) -> boolean", [[Whether a file can be opened.]], [[
print(fm.notebook.exists("/nonexistent/file"))   --> false
]])
fn("make_dir", "fm.notebook.make_dir(dir)", [[mkdir -p, the name passed to the shell as one quoted word.]], [[
local dir = os.tmpname(); os.remove(dir)
fm.notebook.make_dir(dir .. "/a b")
print(fm.notebook.exists(dir .. "/a b"))   --> true
os.execute("rm -rf '" .. dir .. "'")
]])
fn("predictions", "fm.notebook.predictions(model, ds) -> {probs, pred, confidence, label}", [[
Probabilities (a tensor), predicted class ids, confidences and true labels of a dataset, as Lua lists.]], [[
local p = fm.notebook.predictions(fm.LogReg{}, fm.load("test"):subset(1, 10))
print(#p.pred, #p.label)   --> 10 10
]], "dataset")
fn("images_per_second", "fm.notebook.images_per_second(model, ds [, min_seconds]) -> number", [[
Prediction speed on the wall clock, over at least min_seconds (1).]], [[
print(fm.notebook.images_per_second(fm.LogReg{}, fm.load("test"):subset(1, 100), 0.05) > 0)   --> true
]], "dataset")
fn("epoch_table", "fm.notebook.epoch_table(history)", [[Prints (and keeps) the table of epochs of a history.]], [[
fm.notebook.epoch_table({{epoch = 1, loss = 0.5, accuracy = 0.8, lr = 0.001, seconds = 1.5}})
]])
fn("shuffled", "fm.notebook.shuffled(list, seed) -> list", [[A copy of list in a random order fixed by seed.]], [[
print(#fm.notebook.shuffled({1, 2, 3}, 1))   --> 3
]])
fn("clock", "fm.notebook.clock() -> seconds", [[The wall clock the notebooks time cells with: fm.clock.]], [[
print(fm.notebook.clock == fm.clock)   --> true
]])
fn("record", "fm.notebook.record(item [, show])", [[
Adds an item ({kind = "output"|"prose"|"table"|"figure", ...}) to the running cell, after what it
printed so far; show() prints what the terminal sees of it. For helpers that make report items.]], [[
fm.notebook.record({kind = "prose", text = "outside a cell: only shown"}, function() print("shown") end)   --> shown
]])
fn("user_error", "fm.notebook.user_error(message)", [[
Raises an error whose message is all there is to say: fmnist-lua shows it without a traceback.]], [[
print(tostring(select(2, pcall(fm.notebook.user_error, "bad option"))))   --> bad option
]])
fn("begin_session", "fm.notebook.begin_session(dir, argv) -> session", [[
Starts a report: the notebooks created until it is written go into it (fmnist-lua report uses it).]], [[
local s = fm.notebook.begin_session("/tmp/r", {"fmnist-lua"})
print(s.dir, #s.notebooks)   --> /tmp/r 0
fm.notebook.session = nil
]])
fn("draw.learning_curves", "fm.notebook.draw.learning_curves(history, title, figs)", [[
Loss and accuracy per epoch, training and validation: two figures.]], [[
local figs = fm.notebook.figures(os.tmpname() .. "-dir")
figs.quiet = true
fm.notebook.draw.learning_curves({{}, loss = {0.5}, accuracy = {0.8}}, "M", figs)
print(#figs.list)   --> 2
os.execute("rm -rf '" .. figs.dir .. "'")
]], "gnuplot")
fn("draw.confusion", "fm.notebook.draw.confusion(result, classes, title, figs)", [[
The confusion matrix as counts and row-normalised: two heatmaps.]], [[
local figs = fm.notebook.figures(os.tmpname() .. "-dir")
figs.quiet = true
fm.notebook.draw.confusion(fm.metrics(fm.tensor{0, 1, 1}, fm.tensor{0, 1, 0}), fm.classes, "M", figs)
print(#figs.list)   --> 2
os.execute("rm -rf '" .. figs.dir .. "'")
]], "gnuplot")
fn("draw.prediction_grids", "fm.notebook.draw.prediction_grids(test, p, title, figs, o)", [[
Two correctly classified test images of each class, and twenty misclassified ones, captioned
with their true class, predicted class and confidence. p: fm.notebook.predictions(model, test).]], [[
local test = fm.load("test"):subset(1, 200)
local figs = fm.notebook.figures(os.tmpname() .. "-dir")
figs.quiet = true
fm.notebook.draw.prediction_grids(test, fm.notebook.predictions(fm.LogReg{}, test), "M", figs, {seed = 1})
print(#figs.list)   --> 2
os.execute("rm -rf '" .. figs.dir .. "'")
]], { "dataset", "gnuplot" })
fn("draw.saliency", "fm.notebook.draw.saliency(model, test, title, figs, o)", [[
k test images of every class (o.k, default 3), each beside its saliency map for its true class:
the gradient of that class's score at each pixel, averaged over o.samples noisy copies
(SmoothGrad, default 16); a misclassified image's caption says what the model took it for.]], [[
local test = fm.load("test"):subset(1, 200)
local figs = fm.notebook.figures(os.tmpname() .. "-dir")
figs.quiet = true
fm.notebook.draw.saliency(fm.LogReg{}, test, "M", figs, {k = 1, samples = 2, seed = 1})
print(#figs.list)   --> 1
os.execute("rm -rf '" .. figs.dir .. "'")
]], { "dataset", "gnuplot" })
fn("learning_curves", "fm.notebook.learning_curves(history, title, figs)", [[The same as fm.notebook.draw.learning_curves.]], [[
print(fm.notebook.learning_curves == fm.notebook.draw.learning_curves)   --> true
]])
fn("confusion", "fm.notebook.confusion(result, classes, title, figs)", [[The same as fm.notebook.draw.confusion.]], [[
print(fm.notebook.confusion == fm.notebook.draw.confusion)   --> true
]])
fn("prediction_grids", "fm.notebook.prediction_grids(test, p, title, figs, o)", [[The same as fm.notebook.draw.prediction_grids.]], [[
print(fm.notebook.prediction_grids == fm.notebook.draw.prediction_grids)   --> true
]])

-- ---- reports ----

local function rep(name, sig, text, example, needs)
  doc { name = "fm.report." .. name, sig = sig, text = text, example = example, needs = needs }
end

rep("write", "fm.report.write(session) -> html_path, md_path", [[
Writes a session's report: session.dir/index.html (figures embedded: PNG as base64, SVG inline,
PDF as a download) and index.md (figures beside it; those outside the folder copied into
DIR/figures), each through a temporary file.]], [[
local dir = os.tmpname(); os.remove(dir)
local s = {dir = dir, notebooks = {}, argv = {"x"}, started = fm.clock(), date = "today"}
local html = fm.report.write(s)
print(html:sub(-10))   --> index.html
os.execute("rm -rf '" .. dir .. "'")
]])
rep("html", "fm.report.html(session) -> string", [[
The report as one HTML page: title, contents with each cell's time and status, how it was made,
the parameters, then the notebooks' cells. Times and dates are marked class="volatile".]], [[
local s = {dir = "/tmp", notebooks = {}, argv = {}, started = fm.clock(), date = "today", title = "T"}
print(fm.report.html(s):match("<title>(.-)</title>"))   --> T
]])
rep("markdown", "fm.report.markdown(session [, figure_paths]) -> string", [[The report as Markdown.]], [[
local s = {dir = "/tmp", notebooks = {}, argv = {}, started = fm.clock(), date = "today", title = "T"}
print(fm.report.markdown(s):match("^# (%S+)"))   --> T
]])
rep("provenance", "fm.report.provenance(session) -> {{name, value}, ...}", [[
What the numbers of a report depend on: command, date, duration, fmnist version, git commit, Lua,
gnuplot, OpenBLAS, libpng and zlib, compiler, CPU, SIMD flags, threads, system, seeds.]], [[
local rows = fm.report.provenance({notebooks = {}, argv = {"fmnist-lua"}, started = fm.clock(), date = "d"})
print(rows[1][1], rows[1][2])   --> command fmnist-lua
]])
rep("data_rows", "fm.report.data_rows() -> {{path, bytes, sha256}, ...}", [[The dataset files fm.load("train") and fm.load("test") read, with their sizes and sha256.]], [[
print(#fm.report.data_rows())   --> 4
]], "dataset")
rep("dataset_files", "fm.report.dataset_files() -> {path, ...}", [[
Where fm.load("train") and fm.load("test") find their files, looked for as fm.load does.]], [[
print(#fm.report.dataset_files() >= 2)   --> true
]], "dataset")
rep("base64", "fm.report.base64(bytes) -> string", [[Bytes as base64 (for data: URIs).]], [[
print(fm.report.base64("fmnist"))   --> Zm1uaXN0
]])
rep("terminal_text", "fm.report.terminal_text(s) -> string", [[
Output as a terminal showed it: a carriage return keeps the last rewrite of a line, colour and
cursor escapes go.]], [[
print(fm.report.terminal_text("10%\r50%\r100%\n"))   --> 100%
]])
rep("command_text", "fm.report.command_text(argv) -> string", [[A command line as a shell would read it back.]], [[
print(fm.report.command_text({"fmnist-lua", "a b"}))   --> fmnist-lua 'a b'
]])

-- ---- capture ----

local function cap(name, sig, text, example)
  doc { name = "fm.capture." .. name, sig = sig, text = text, example = example }
end
cap("start", "fm.capture.start([echo])", [[
Keeps what is printed from now on (still shown with echo): inside fmnist-lua everything written
to stdout and stderr, C code's included; under a stock lua5.4 what print and io.write write.]], [[
fm.capture.start(false)
io.write("kept")
print(fm.capture.stop() == "kept")   --> true
]])
cap("take", "fm.capture.take() -> string", [[What was printed since start or the last take.]], [[
fm.capture.start(false)
io.write("a")
local a = fm.capture.take()
fm.capture.stop()
print(a)   --> a
]])
cap("stop", "fm.capture.stop() -> string", [[Stops keeping; returns what was printed since the last take.]], [[
print(fm.capture.stop())   --> 
]])
cap("active", "fm.capture.active() -> boolean", [[Whether a capture is running.]], [[
print(fm.capture.active())   --> false
]])
cap("level", "fm.capture.level() -> \"all\" | \"lua\"", [[
"all" inside fmnist-lua (file descriptors: C code and child processes too), "lua" under a stock
lua5.4 (print and io.write).]], [[
print(fm.capture.level())   --> all
]])
