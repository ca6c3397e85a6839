-- fmnist.notebook and fmnist.explain, the modules behind the model notebooks: option parsing and
-- its errors, and every explanation map checked against values worked out by hand on models whose
-- weights are set, over a small CSV dataset written here (no installed dataset needed).
local T = require "testlib"
local fm = require "fmnist"
local nb = require "fmnist.notebook"
local explain = require "fmnist.explain"

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local p = io.popen("mktemp -d /tmp/fmnist-nblib-test-XXXXXX")
local dir = p:read("a"):gsub("%s+$", "")
p:close()

-- ---- options ----
local o = nb.options("logreg", {})
T.eq({ o.outdir, o.seed, o.quick, o.epochs }, { "out/logreg", 1, false, nil },
  "defaults: out/NAME, seed 1, the model's own epochs")
o = nb.options("cnn", { "figs/", "--epochs=3", "--seed", "9" })
T.eq({ o.outdir, o.epochs, o.seed }, { "figs", 3, 9 }, "outdir, --epochs=3 and --seed 9")
o = nb.options("mlp", { "--quick", "--out", "x" })
T.eq({ o.outdir, o.quick, o.epochs }, { "x", true, 1 }, "--quick means one epoch unless told")
o = nb.options("mlp", { "--quick", "--epochs", "4" })
T.eq(o.epochs, 4, "--quick --epochs 4 trains 4")
o = nb.options("explain", { "--models", "m" }, { { name = "models", kind = "string", arg = "DIR",
  default = "out", help = "" } })
T.eq({ o.models, o.outdir }, { "m", "out/explain" }, "a notebook's own option")
o = nb.options("logreg", { "--l2", "3e-4" }, { { name = "l2", kind = "number", arg = "X", help = "" } })
T.eq(o.l2, 3e-4, "a number option")
T.err("option --l2 needs a number of at least 0, not '-1'", nb.options, "logreg", { "--l2=-1" },
  { { name = "l2", kind = "number", arg = "X", help = "" } })
T.err("mlp.lua: unknown option '--bogus' (--help lists the options)", nb.options, "mlp", { "--bogus" })
T.err("unknown option '-x'", nb.options, "mlp", { "-x" })
T.err("option --epochs needs a whole number, not '2.5'", nb.options, "mlp", { "--epochs", "2.5" })
T.err("option --seed needs a value (N)", nb.options, "mlp", { "--seed" })
T.err("option --quick takes no value", nb.options, "mlp", { "--quick=yes" })
T.err("option --epochs must be at least 1", nb.options, "mlp", { "--epochs", "0" })
T.err("one output folder expected, got 2 arguments", nb.options, "mlp", { "a", "b" })
T.err("the output folder is given twice", nb.options, "mlp", { "a", "--out", "b" })
T.err("unknown option '--epochs'", nb.options, "explain", { "--epochs", "2" }, {}, { "epochs" })

T.eq(nb.plural(1, "epoch") .. ", " .. nb.plural(12, "epoch"), "1 epoch, 12 epochs", "plural")
T.eq(nb.model_path("out", "cnn"), "out/cnn/cnn.fmn", "where a notebook's model lives")
local c0 = nb.clock()
T.ok(type(c0) == "number" and nb.clock() >= c0, "a wall clock")
T.eq(nb.shuffled({ 1, 2, 3, 4, 5 }, 3), nb.shuffled({ 1, 2, 3, 4, 5 }, 3), "a seeded shuffle repeats")
do
  local s = nb.shuffled({ 1, 2, 3, 4, 5, 6, 7, 8 }, 3)
  table.sort(s)
  T.eq(s, { 1, 2, 3, 4, 5, 6, 7, 8 }, "a shuffle keeps every element once")
  T.ok(table.concat(nb.shuffled({ 1, 2, 3, 4, 5, 6, 7, 8 }, 3), ",") ~= table.concat(nb.shuffled({ 1, 2, 3, 4, 5, 6, 7, 8 }, 4), ","),
    "another seed, another order")
  math.randomseed(42)
  local want = { math.random(1000), math.random(1000) }
  math.randomseed(42)
  local first = math.random(1000)
  nb.shuffled({ 1, 2, 3 }, 9)
  T.eq({ first, math.random(1000) }, want, "a shuffle leaves Lua's math.random as it was")
end
local endless = setmetatable({ 1, 2 }, { __len = function() return 1 << 62 end,
  __index = function(_, i) return i end })
T.eq(#nb.shuffled(endless, 1), 2, "shuffled reads a list raw: a __len of 2^62 is not asked")
T.err("shuffled: the seed must be an integer, got nil", nb.shuffled, { 1 })
T.err("shuffled: a list expected, got string", nb.shuffled, "abc", 1)

-- ---- a small dataset: the label says whether the top-left 4x4 corner is lit ----
-- 12 images: class 1 with the corner at 1.0 (255), class 0 dark, every image lit at the centre.
local csv = dir .. "/corner.csv"
local f = assert(io.open(csv, "w"))
for i = 1, 12 do
  local label = i % 2
  local px = {}
  for q = 1, 784 do
    local r, c = (q - 1) // 28, (q - 1) % 28
    local corner = r < 4 and c < 4
    px[q] = (corner and label == 1) and 255 or ((r >= 12 and r < 16 and c >= 12 and c < 16) and 200 or 0)
  end
  f:write(label, ",", table.concat(px, ","), "\n")
end
f:close()
local ds = fm.load(csv)
T.eq(#ds, 12, "the corner dataset")

-- A LogReg that scores class 1 by the corner: weight 1 on its 16 pixels, bias -1. A lit corner
-- gives 15 for class 1 against 0, a dark one -1 against 0.
local model = fm.LogReg { seed = 1 }
local w = fm.zeros(784, 10)
for r = 0, 3 do
  for c = 0, 3 do w:set(r * 28 + c + 1, 2, 1) end
end
w:set(300, 5, -2) -- one negative weight elsewhere, for the maps
local b = fm.zeros(10)
b:set(2, -1)
model:set_weights(1, w, b)
T.eq(model:evaluate(ds).accuracy, 1, "the corner model classifies every image")

-- ---- weight maps ----
local maps = explain.class_weights(model)
T.eq(#maps, 10, "class_weights: ten maps")
T.eq(maps[1]:shape(), { 28, 28 }, "of 28x28")
T.eq({ maps[2]:get(1, 1), maps[2]:get(4, 4), maps[2]:get(5, 1), maps[5]:get(11, 20) }, { 1, 1, 0, -2 },
  "class_weights: map c holds column c of the weights, row-major (pixel 300 = row 11, column 20)")
local imp = explain.pixel_importance(model)
T.eq({ imp:get(1, 1), imp:get(11, 20), imp:get(20, 20) }, { 1, 2, 0 },
  "pixel_importance: |weight| summed over the classes")
T.err("weight maps are for a linear model such as LogReg", explain.class_weights, fm.MLP { seed = 1 })

-- ---- saliency ----
-- For a linear model the gradient of a class's score is its weight column, whatever the image.
local x = ds:images(1, 2)
local sal = explain.saliency(model, x, 1)
T.eq(sal:shape(), { 2, 784 }, "saliency: one map per image")
T.eq({ sal:get(1, 1), sal:get(2, 16 * 28), sal:max(), sal:min() }, { 1, 0, 1, 0 },
  "saliency of class 1 = |its weights|, scaled to the 99th percentile and clipped at 1")
local smooth = explain.saliency(model, x, fm.tensor { 1, 1 }, { samples = 4, noise = 0.1, seed = 2 })
T.near(smooth:get(1, 1), 1, 1e-6, "SmoothGrad of a linear model: the same map (noise moves nothing)")

-- ---- occlusion ----
-- Hiding the corner turns every class-1 image into class 0: half the images, 50 points, and all
-- of class 1 (100 points); no other 4x4 patch changes anything.
local occ = explain.occlusion(model, ds, { patch = 4, stride = 4 })
T.eq({ occ.base, occ.positions, occ.n }, { 1, 49, 12 }, "occlusion: intact accuracy, 7x7 positions")
T.near({ occ.map:get(1, 1), occ.map:get(4, 4), occ.map:get(5, 5), occ.map:get(14, 14) }, { 50, 50, 0, 0 },
  1e-9, "occlusion: 50 points lost where the corner is hidden, none elsewhere")
T.near({ occ.by_class[2]:get(2, 3), occ.by_class[1]:get(2, 3) }, { 100, 0 }, 1e-9,
  "occlusion per class: class 1 loses everything, class 0 nothing")
local occ2 = explain.occlusion(model, ds, { patch = 4, stride = 4, batch = 1 })
T.ok(occ2.map == occ.map, "occlusion: the same result one patch per call")
T.eq({ explain.peak(occ.map) }, { 1, 1, 50 }, "peak: row, column and value of the largest")
T.err("patch must be 1..28", explain.occlusion, model, ds, { patch = 30 })

-- ---- filters and feature maps ----
local cnn = fm.CNN { seed = 1, layers = { { "conv2d", 2, 3 }, "relu", { "maxpool", 2 }, "flatten",
  { "dense", 10 } } }
local k = fm.zeros(3, 3, 1, 2)
k:set(2, 2, 1, 1, 1) -- filter 1: the identity
k:set(1, 1, 1, 2, -1) -- filter 2: minus the pixel up and to the left
cnn:set_weights(1, k, fm.zeros(2))
local filters, layer = explain.filters(cnn)
T.eq({ #filters, layer }, { 2, 1 }, "filters: one per output channel, of the first convolution")
T.eq(filters[1], { { 0, 0, 0 }, { 0, 1, 0 }, { 0, 0, 0 } }, "filters: the kernel as rows")
T.eq(filters[2][1][1], -1, "filters: the second kernel")
local fmaps = explain.feature_maps(cnn, ds:image(2), 2)
T.eq({ #fmaps, fmaps[1]:shape()[1], fmaps[1]:shape()[2] }, { 2, 26, 26 }, "feature_maps: 2 maps of 26x26")
-- image 2 is class 0: dark corner, centre rows/columns 13..16 at 200/255
T.near({ fmaps[1]:get(12, 12), fmaps[1]:get(1, 1) }, { 200 / 255, 0 }, 1e-6,
  "feature_maps: the identity filter after ReLU copies the pixel (cut by one on each side)")
T.eq(fmaps[2]:max(), 0, "feature_maps: a negative filter is all zero after ReLU")
T.err("gives no maps", explain.feature_maps, cnn, ds:image(2), 5)

-- ---- the helpers the notebooks draw with ----
T.eq(explain.layers_of(cnn, "conv2d"), { 1 }, "layers_of: the convolution layers")
T.eq(explain.layers_of(model, "dense"), { 1 }, "layers_of: the dense layer of LogReg")
local big = explain.enlarge({ { 1, 2 }, { 3, 4 } }, 2)
T.eq(big:totable(), { { 1, 1, 2, 2 }, { 1, 1, 2, 2 }, { 3, 3, 4, 4 }, { 3, 3, 4, 4 } },
  "enlarge: every value a block of f x f")
local picked = explain.per_class(ds, 2, 1)
local by_label = {}
for _, i in ipairs(picked) do
  local y = ds:label(i)
  by_label[y] = (by_label[y] or 0) + 1
end
T.eq({ #picked, by_label[0], by_label[1] }, { 4, 2, 2 }, "per_class: k images of each class present")
T.eq(explain.per_class(ds, 2, 1), picked, "per_class: the same seed picks the same images")
local cut = explain.input_like(ds:image(2), 26, 26)
T.eq({ cut:shape()[1], cut:get(12, 12) }, { 26, ds:image(2):get(13, 13) },
  "input_like: a valid convolution's size is the image cut by one on each side")
local small = explain.input_like(fm.ones(28, 28), 7, 7)
T.near(small:get(3, 3), 1, 1e-6, "input_like: pooled sizes are block averages")
-- For a linear model the gradient is the class's weights: on the corner dataset the mean map is
-- |class 1's weights| (the corner) for class 1 images and 0 for class 0 (column 1 is zero),
-- scaled to its largest value.
local mean_map = explain.mean_saliency(model, ds)
T.eq({ mean_map:shape()[1], mean_map:get(1, 1), mean_map:get(20, 20) }, { 28, 1, 0 },
  "mean_saliency: the mean |gradient| over the images, scaled to 1")
T.err("the dataset is empty", explain.mean_saliency, model, ds:subset{ n = 0 })

-- ---- figures and tables, with --format ----
local figs = nb.figures(dir .. "/figs", "svg")
figs.prefix = "t_"
figs.quiet = true
T.eq(figs:path("confusion.png"), dir .. "/figs/t_confusion.svg", "figs:path follows the format")
local path = figs:add(fm.plot.heatmap(occ.map, { file = figs:path("occlusion.png") }), "a map")
local svg = T.read(path) or ""
T.ok(svg:find("<svg", 1, true) ~= nil, "the figure is written as SVG")
T.eq(figs.list, { path }, "figs.list holds the figures written")

-- rows whose __len says 2^62 (a fuzzer's find): the table prints the one row it made, once
do
  local code = [[local nb = require "fmnist.notebook"
local lying = setmetatable({ { "a", 1 } }, { __len = function() return 1 << 62 end })
nb.table({ { "name", "%s" }, { "n", "%d" } }, lying)]]
  local host = os.getenv("FMNIST_HOST") or "./fmnist-lua"
  local p = assert(io.popen("timeout 60 " .. shell_quote(host) .. " -e " .. shell_quote(code)))
  local text = p:read("a")
  p:close()
  T.eq(text, "name  n\n----  -\na     1\n", "a rows table whose __len lies prints its one row, once")
end

fm.plot.close()
os.execute("rm -rf " .. shell_quote(dir))
T.done()
