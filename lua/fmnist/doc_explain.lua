-- Help text of fmnist.explain (lua/fmnist/explain.lua): see lua/fmnist/help.lua.
local doc = require("fmnist.help").section("Explanations", 65, [[
What a trained model looks at: the maps behind the explanation figures of the model notebooks and
notebooks/explain.lua, which draw them.]])

local function fn(name, sig, text, example, needs)
  doc { name = "fm.explain." .. name, sig = sig, text = text, example = example, needs = needs }
end

fn("class_weights", "fm.explain.class_weights(model) -> {map, ...}", [[
A linear model's weights, one 28x28 map per class (the first dense layer's column for the class).
Raises for a model whose first dense layer is not pixels x classes.]], [[
local maps = fm.explain.class_weights(fm.LogReg{})
print(#maps, maps[1]:shape()[1])   --> 10 28
]])
fn("pixel_importance", "fm.explain.pixel_importance(model) -> Tensor", [[
How much each pixel weighs in a linear model's decision: |weight| summed over the classes, 28x28.]], [[
print(fm.explain.pixel_importance(fm.LogReg{}):sum())   --> 0.0
]])
fn("saliency", "fm.explain.saliency(model, x, classes [, opts]) -> Tensor", [[
|gradient of the class score with respect to each pixel| for each image of x (N x 784), each map
divided by its 99th percentile and clipped at 1. classes: one class id or a tensor of N.
opts.samples > 1 averages over noisy copies (SmoothGrad, noise opts.noise, seed opts.seed).]], [[
local s = fm.explain.saliency(fm.MLP{hidden = {8}, seed = 1}, fm.rand(2, 784), 3, {samples = 2, seed = 1})
print(s:shape()[1], s:max() <= 1)   --> 2 true
]])
fn("mean_saliency", "fm.explain.mean_saliency(model, ds [, opts]) -> Tensor", [[
The mean over a dataset's images of |gradient of the true class's score| at each pixel, scaled to
its largest value: where the model looks on average (28x28). opts.batch: images per call (256).]], [[
local m = fm.explain.mean_saliency(fm.MLP{hidden = {8}, seed = 1}, fm.load("test"):subset(1, 50))
print(m:shape()[1], m:max())   --> 28 1.0
]], "dataset")
fn("filters", "fm.explain.filters(model [, layer]) -> kernels, layer", [[
The kernels of a convolution layer (the first by default), one kh x kw list of rows per output
channel, summed over the input channels.]], [[
local k, layer = fm.explain.filters(fm.CNN{seed = 1})
print(#k, #k[1], layer)   --> 32 3 1
]])
fn("feature_maps", "fm.explain.feature_maps(model, image, layer) -> {map, ...}", [[
A layer's output for one image, one 2-D map per channel. Raises for a layer whose output is a vector.]], [[
local maps = fm.explain.feature_maps(fm.CNN{seed = 1}, fm.zeros(28, 28), 2)
print(#maps, maps[1]:shape()[1])   --> 32 26
]])
fn("occlusion", "fm.explain.occlusion(model, ds [, opts]) -> result", [[
Hides a patch x patch square (set to 0, the background) at every position of a grid in all images
of ds and measures the accuracy lost: result.base (intact accuracy), result.map (28x28, mean drop
in points of the patches covering each pixel), result.by_class (one map per class),
result.positions, result.n, result.patch, result.stride.]], [[
local r = fm.explain.occlusion(fm.LogReg{}, fm.load("test"):subset(1, 20), {patch = 7, stride = 7})
print(r.positions, r.n)   --> 16 20
]], "dataset")
fn("peak", "fm.explain.peak(map) -> row, column, value", [[The pixel of a 2-D map with the largest value (1-based).]], [[
print(fm.explain.peak(fm.tensor{{0, 1}, {5, 2}}))   --> 2 1 5.0
]])
fn("abs_quantile", "fm.explain.abs_quantile(maps, q) -> number", [[
The q-quantile (0..1) of |value| over a list of tensors: a colour range that a few extreme values
do not wash out.]], [[
print(fm.explain.abs_quantile({fm.tensor{1, -2, 3, 4}}, 0.5))   --> 2.0
]])
fn("per_class", "fm.explain.per_class(ds, k, seed) -> {index, ...}", [[
The indices in ds of k images of each class, picked with the seed, class by class.]], [[
print(#fm.explain.per_class(fm.load("test"), 2, 1))   --> 20
]], "dataset")
fn("enlarge", "fm.explain.enlarge(rows, f) -> Tensor", [[
A tensor of the list of rows with each value a block of f x f, so that a 3x3 kernel is drawn as a
clear 3x3 of squares.]], [[
print(table.concat(fm.explain.enlarge({{1, 2}}, 3):shape(), "x"))   --> 3x6
]])
fn("input_like", "fm.explain.input_like(image, h, w) -> Tensor", [[
An image at a feature map's size: cut around its centre when the maps are a few pixels smaller
(a valid convolution), else shrunk by averaging blocks (after pooling).]], [[
print(fm.explain.input_like(fm.ones(28, 28), 13, 13):shape()[1])   --> 13
]])
fn("layers_of", "fm.explain.layers_of(model, kind) -> {i, ...}", [[The indices of a model's layers of one type ("conv2d", "relu", "dense", ...).]], [[
print(table.concat(fm.explain.layers_of(fm.CNN{seed = 1}, "conv2d"), " "))   --> 1 4
]])
