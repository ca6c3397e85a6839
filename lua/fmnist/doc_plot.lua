-- Help text of the figures (lua/fmnist/plot.lua, lua/l_png.c, lua/l_gnuplot.c): see
-- lua/fmnist/help.lua.
local doc = require("fmnist.help").section("Figures", 60, [[
Figures are drawn by one gnuplot process (gnuplot-nox). The extension of opts.file picks the
kind: .png, .svg, .pdf or .txt; each figure returns the path of its file. Without a file the
figure is drawn on standard output: as text (images, image grids and heatmaps in coloured Unicode
half blocks through fm.termimage), or as sixel graphics when FMNIST_PLOT=sixel and the terminal
says it shows them (else as text, with a word on stderr). Every figure takes title (broken into
lines when it is wider than the figure), xlabel, ylabel, size = {width, height} (pixels) and
file; unknown options are errors that list the known ones. SVG figures draw images pixel by pixel,
so that they stay sharp when scaled.]])

local COMMON = {
  { "title", "the title (may have several lines)" },
  { "xlabel", "the label of the x axis" },
  { "ylabel", "the label of the y axis" },
  { "size", "{width, height} in pixels (characters for text)" },
  { "file", "where to write it: .png, .svg, .pdf or .txt (default: drawn on standard output)" },
}
local function with_common(list)
  local out = {}
  for _, o in ipairs(list) do out[#out + 1] = o end
  for _, o in ipairs(COMMON) do out[#out + 1] = o end
  return out
end

doc {
  name = "fm.plot",
  sig = "fm.plot",
  text = [[
The figures: bar, hist, lines, scatter, heatmap, image, images, and close. Series (bar, lines) are
a tensor or list of numbers, a list of series {{name = "train", values = t1}, ...}, or a table of
named series {train = t1, test = t2} (drawn in name order). fm.plot.PALETTES holds the palettes
as data ({stops = {{position, "#rrggbb"}, ...}}), shared with fm.termimage.]],
  example = [[
local path = fm.plot.lines({loss = {0.9, 0.5, 0.4}}, {title = "Loss", file = "loss.png"})
print(path)   --> loss.png
]],
  needs = "gnuplot",
}

doc {
  name = "fm.plot.bar",
  sig = "fm.plot.bar(values [, opts]) -> path",
  text = [[
Bars per category; several series side by side, with a key beside the plot. Long category names
are turned 30 degrees, each ending under its bar.]],
  options = with_common {
    { "labels", "the category names under the bars" },
    { "values", "true: write each bar's value above it" },
    { "logy", "true: a logarithmic y axis" },
    { "fontsize", "the font size (default 11)" },
  },
  example = [[
local test = fm.load("test")
print(fm.plot.bar(test:counts(), {labels = test.classes, file = "classes.png"}))   --> classes.png
]],
  needs = { "dataset", "gnuplot" },
}

doc {
  name = "fm.plot.hist",
  sig = "fm.plot.hist(values [, opts]) -> path",
  text = [[A histogram of a tensor's values (or a list of numbers).]],
  options = with_common {
    { "bins", "how many bins (default 50)" },
    { "range", "{low, high} of the bins (default the values' own)" },
    { "logy", "true: a logarithmic count axis" },
    { "fontsize", "the font size" },
  },
  example = [[
fm.seed(1)
print(fm.plot.hist(fm.randn(1000), {bins = 30, file = "normal.svg"}))   --> normal.svg
]],
  needs = "gnuplot",
}

doc {
  name = "fm.plot.lines",
  sig = "fm.plot.lines(series [, opts]) -> path",
  text = [[
Named series over x (1, 2, ... unless given): learning curves, for one. A series table may say
how it is drawn: style = "lines", "points" or "linespoints" (the default: lines with points up to
60 values). Whole-number x (epochs, trials) gets an axis from the first to the last with a small
margin and tics on whole numbers; a flat series (one point, or one value) gets a range around it.]],
  options = with_common {
    { "x", "the x values shared by every series (a series may have its own, series.x)" },
    { "logy", "true: a logarithmic y axis" },
    { "y2", "names of series drawn against a second y axis on the right" },
    { "y2label", "the label of that axis" },
    { "points", "false: lines without points" },
    { "fontsize", "the font size" },
  },
  example = [[
local h = {loss = {0.9, 0.6, 0.5}, val_loss = {0.8, 0.7, 0.7}}
local path = fm.plot.lines({{name = "training", values = h.loss}, {name = "validation", values = h.val_loss}},
  {xlabel = "epoch", file = "curves.png"})
print(path)   --> curves.png
local trials = {{name = "trial", values = {0.8, 0.9, 0.85}, style = "points"},
  {name = "best so far", values = {0.8, 0.9, 0.9}, style = "lines"}}
print(fm.plot.lines(trials, {xlabel = "trial", file = "trials.png"}))   --> trials.png
]],
  needs = "gnuplot",
}

doc {
  name = "fm.plot.scatter",
  sig = "fm.plot.scatter(x, y [, opts]) -> path",
  text = [[
Points (x[i], y[i]), coloured by group when opts.groups gives one id per point. The x axis runs
from the least x to the greatest with 5% on each side (in decades with logx); with categories,
x = i is the category categories[i] (a choice of values: "relu", "tanh"), named under its place.
One point, or one y value, is drawn in a range around it.]],
  options = with_common {
    { "groups", "a group id per point (class ids, drawn in their own colours)" },
    { "labels", "names of the groups, group id g at position g + 1" },
    { "pointsize", "the size of the points, up to 10 (default 0.5)" },
    { "logx", "true: a logarithmic x axis (every x above 0)" },
    { "logy", "true: a logarithmic y axis (every y above 0)" },
    { "categories", "names for x = 1, 2, ...: the tics of the x axis" },
    { "fontsize", "the font size" },
  },
  example = [[
fm.seed(2)
print(fm.plot.scatter(fm.randn(100), fm.randn(100), {file = "points.png"}))   --> points.png
local lr, score = {1e-4, 1e-3, 1e-2}, {0.81, 0.86, 0.84}
print(fm.plot.scatter(lr, score, {logx = true, xlabel = "lr", file = "lr.png"}))   --> lr.png
local choice = {1, 2, 2, 3}   -- the index of each trial's activation
local opts = {categories = {"relu", "tanh", "gelu"}, file = "activation.png"}
print(fm.plot.scatter(choice, {0.8, 0.85, 0.84, 0.83}, opts))   --> activation.png
]],
  needs = "gnuplot",
}

doc {
  name = "fm.plot.heatmap",
  sig = "fm.plot.heatmap(matrix [, opts]) -> path",
  text = [[
A matrix as coloured cells with a colour scale, row 1 at the top, the values written in the cells
when it is small (20 x 20 or less): confusion matrices, maps of pixels. Without a file, in a
terminal: fm.termimage.heatmap (values in coloured cells), or the matrix as an image with its
colour scale when it is too large for its values.]],
  options = with_common {
    { "labels", "names of the rows and the columns (the same list)" },
    { "row_labels", "names of the rows" },
    { "col_labels", "names of the columns" },
    { "palette", "blues (default), gray, gray_r, binary, viridis, magma, diverging (rdbu)" },
    { "range", "{low, high} of the colour scale (default the values' own)" },
    { "values", "true or false: write the values in the cells (default: when small)" },
    { "digits", "decimals of the values written" },
    { "cblabel", "the label of the colour scale" },
    { "fontsize", "the font size" },
  },
  example = [[
print(fm.plot.heatmap(fm.tensor{{5, 1}, {2, 7}}, {labels = {"a", "b"}, file = "cm.png"}))   --> cm.png
]],
  needs = "gnuplot",
}

doc {
  name = "fm.plot.image",
  sig = "fm.plot.image(t [, opts]) -> path",
  text = [[
One grayscale image: a 2-D tensor, or a 1-D one of square length (a row of ds:images()). Without
a file, in a terminal: drawn by fm.termimage.image in half blocks.]],
  options = with_common {
    { "palette", "gray (default) or another palette" },
    { "range", "{low, high} of the grey scale (default [0, 1] when the values fit)" },
    { "colorbox", "true: draw the colour scale" },
    { "fontsize", "the font size" },
  },
  example = [[
print(fm.plot.image(fm.load("test"):image(1), {title = "Ankle boot", file = "boot.png"}))   --> boot.png
]],
  needs = { "dataset", "gnuplot" },
}

doc {
  name = "fm.plot.images",
  sig = "fm.plot.images(list [, opts]) -> path",
  text = [[
A grid of images, each with a caption under it (captions may have several lines): a list of
tensors of one size, an n x h x w tensor, or an n x (k*k) tensor whose rows are square images.
cblabel (or colorbox) adds a colour scale. Without a file, in a terminal: fm.termimage.images, as
many side by side as fit.]],
  options = with_common {
    { "cols", "images per row (default up to 10)" },
    { "captions", "a caption per image (labels is the same)" },
    { "labels", "the same as captions" },
    { "palette", "gray (default), magma, diverging, ..." },
    { "range", "{low, high} of the colour scale, shared by all images" },
    { "cell", "pixels of figure per image (default 84)" },
    { "colorbox", "true: draw the colour scale" },
    { "cblabel", "the label of the colour scale (draws it)" },
    { "fontsize", "the font size" },
  },
  example = [[
local test = fm.load("test")
print(fm.plot.images({test:image(1), test:image(2)}, {captions = {"a", "b"}, file = "two.png"}))   --> two.png
]],
  needs = { "dataset", "gnuplot" },
}

doc {
  name = "fm.plot.close",
  sig = "fm.plot.close()",
  text = [[Ends the gnuplot process now (it also ends with the program; the next figure starts another).]],
  example = [[
fm.plot.close()
print(fm.gnuplot.pid())   --> nil
]],
}

doc {
  name = "fm.png",
  sig = "fm.png",
  text = [[PNG files through libpng: fm.png.grid, fm.png.save (t:save_png), fm.png.load (fm.load_png).]],
  example = [[
print(type(fm.png.grid), fm.png.load == fm.load_png)   --> function true
]],
}

doc {
  name = "fm.png.grid",
  sig = "fm.png.grid(images [, opts]) -> path | Tensor",
  text = [[
Images side by side in a grid, as one picture: written as a PNG when opts.file is given, else
returned as a tensor (what fm.plot.images draws).]],
  options = {
    { "cols", "images per row (default: a square-ish grid)" },
    { "scale", "each pixel drawn as scale x scale (default 1)" },
    { "gap", "pixels between images (default 1); gap_x and gap_y set the two directions apart" },
    { "gap_x", "pixels between columns" },
    { "gap_y", "pixels between rows" },
    { "background", "the value of gaps and empty cells (default 1, white)" },
    { "file", "write a PNG there and return its path" },
  },
  example = [[
local g = fm.png.grid({fm.zeros(2, 2), fm.ones(2, 2)}, {cols = 2, gap = 1})
print(table.concat(g:shape(), "x"))   --> 2x5
]],
}

doc {
  name = "fm.png.save",
  sig = "fm.png.save(t, path [, opts]) -> path",
  text = [[The same as t:save_png(path, opts).]],
  example = [[
local path = os.tmpname() .. ".png"
print(fm.png.save(fm.ones(4, 4), path) == path)   --> true
os.remove(path)
]],
}

doc {
  name = "fm.png.load",
  sig = "fm.png.load(path) -> Tensor",
  text = [[The same as fm.load_png(path).]],
  example = [[
local path = os.tmpname() .. ".png"
fm.ones(3, 5):save_png(path)
print(table.concat(fm.png.load(path):shape(), "x"))   --> 3x5
os.remove(path)
]],
}

doc {
  name = "fm.load_png",
  sig = "fm.load_png(path) -> Tensor",
  text = [[Any PNG (grey, colour, palette, 16-bit) as grayscale floats in [0, 1], height x width. Raises naming the file.]],
  example = [[
local path = os.tmpname() .. ".png"
fm.full(2, 3, 0.5):save_png(path)
print(("%.2f"):format(fm.load_png(path):mean()))   --> 0.50
os.remove(path)
]],
}

doc {
  name = "fm.gnuplot",
  sig = "fm.gnuplot",
  text = [[
The gnuplot process behind fm.plot: one for the whole program, started by the first figure,
whose messages are read and checked. For drawing what fm.plot does not: fm.gnuplot.run.
FMNIST_GNUPLOT names the program, FMNIST_GNUPLOT_TIMEOUT the seconds to wait (60).]],
  example = [[
print(type(fm.gnuplot.run))   --> function
]],
}

doc {
  name = "fm.gnuplot.run",
  sig = "fm.gnuplot.run(fig) -> path | text, warnings",
  text = [[
Sends one figure to gnuplot: fig.terminal (a `set terminal` argument), fig.output (a file, written
through a temporary one; nil to get text or sixel back), fig.timeout, and the commands as
fig[1..n] — strings, or data blocks {name = "$d", columns = {...}} / {name = "$m", matrix = t}.
Returns the file (or the drawing) and what gnuplot warned about. User text must go through
fm.gnuplot.quote.]],
  example = [[
local out = fm.gnuplot.run{terminal = "dumb size 40,10", "plot x notitle"}
print(type(out))   --> string
]],
  needs = "gnuplot",
}

doc {
  name = "fm.gnuplot.quote",
  sig = "fm.gnuplot.quote(s) -> string",
  text = [[A gnuplot string literal that reads back as s and can run nothing (no backquotes, no macros).]],
  example = [[
print(fm.gnuplot.quote("a 'b'"))   --> "a \0047b\0047"
]],
}

doc {
  name = "fm.gnuplot.pid",
  sig = "fm.gnuplot.pid() -> integer | nil",
  text = [[The running gnuplot's process id, or nil when none runs.]],
  example = [[
fm.gnuplot.close()
print(fm.gnuplot.pid())   --> nil
]],
}

doc {
  name = "fm.gnuplot.close",
  sig = "fm.gnuplot.close()",
  text = [[Ends the gnuplot process now (fm.plot.close does the same).]],
  example = [[
fm.gnuplot.close()
print(fm.gnuplot.pid())   --> nil
]],
}
