-- Help text of networks as graphs (lua/fmnist/nets.lua, the layer kinds of engine/fm_ops.c): see
-- lua/fmnist/help.lua.
local doc = require("fmnist.help").section("Networks", 41, [[
Any network of layers: each layer takes the one before it unless it names its inputs, so residual
blocks and branches can be written; containers (fm.Sequential, fm.Residual) compile to such lists,
and fm.ResNet and fm.MobileNet are presets built that way. They train, evaluate, predict, save and
explain like the three original models.]])

doc {
  name = "fm.Model",
  sig = "fm.Model{layers = {...}, kind =, l2 =, seed =} -> Model",
  text = [[
A network of any layers. A layer is a name ("relu", "flatten", "batchnorm", "global_avgpool",
"relu6", "add") or a table: the name, then its values by position or by key —
{"dense", units, bias = true, init = "auto"|"he"|"glorot"|"zeros"},
{"conv2d", filters, kernel, padding = "valid"|"same", stride = 1, groups = 1, bias = true},
{"maxpool", size}, {"avgpool", size}, {"dropout", rate}, {"batchnorm", eps = 1e-5,
momentum = 0.9, init = "zeros"} (momentum: running = momentum * running + (1 - momentum) * batch).
Any layer may have a `name` and `inputs`: a list of earlier layers by name, by 1-based index,
by offset (-1 is the layer before) or "input" (the network's input); "add" sums its inputs.
groups equal to the input channels (and filters) makes a depthwise convolution. The last layer
gives the class scores.]],
  options = {
    { "layers", "the list of layers (containers allowed)" },
    { "kind", "the name the model goes by in summaries and files (default \"Model\")" },
    { "l2", "L2 penalty on the weights (default 0)" },
    { "seed", "seed of the initial weights" },
  },
  example = [[
local m = fm.Model{seed = 1, layers = {
  {"conv2d", 8, 3, padding = "same", bias = false, name = "c1"}, "batchnorm", "relu",
  {"conv2d", 8, 3, padding = "same", bias = false}, "batchnorm",
  {"add", inputs = {-1, "c1"}}, "relu",
  "global_avgpool", {"dense", 10}}}
print(m.layers, m.params)   --> 9 770
]],
  see = { "fm.Residual", "fm.ResNet", "Model:summary" },
}

doc {
  name = "fm.Sequential",
  sig = "fm.Sequential{layer, ...} -> container",
  text = [[
Layers one after the other, as a single item of another list: a way to name a block and reuse
it. fm.Model and fm.CNN compile it into their flat list.]],
  example = [[
local block = fm.Sequential{{"conv2d", 8, 3, padding = "same"}, "relu"}
print(fm.Model{seed = 1, layers = {block, block, "flatten", {"dense", 10}}}.layers)   --> 6
]],
}

doc {
  name = "fm.Residual",
  sig = "fm.Residual{body = {...}, shortcut = {...}, activation = \"relu\"} -> container",
  text = [[
A residual block: body(x) + shortcut(x), then the activation. Without shortcut the block's input
itself is added (the identity); a shortcut such as {{"conv2d", c, 1, stride = 2}, "batchnorm"}
projects it when the body changes the shape. activation is "relu" (default), "relu6" or false.]],
  options = {
    { "body", "the layers of the main path" },
    { "shortcut", "the layers of the shortcut (default: none, the identity)" },
    { "activation", "\"relu\", \"relu6\" or false (default \"relu\")" },
  },
  example = [[
local r = fm.Residual{body = {{"conv2d", 4, 3, padding = "same"}, "batchnorm"}}
local m = fm.Model{seed = 1, layers = {{"conv2d", 4, 3, padding = "same"}, r, "flatten", {"dense", 10}}}
print(m.layers)   --> 7
]],
}

doc {
  name = "fm.ResNet",
  sig = "fm.ResNet{depth = 20, width = 16, seed =, l2 =} -> Model",
  text = [[
The residual network of He et al. for small images (their CIFAR layout), sized for 28x28: a 3x3
stem of `width` channels with batch norm and ReLU, three stages of (depth - 2) / 6 basic blocks
(two 3x3 convolutions with batch norm) at width, 2 width and 4 width channels, stride 2 entering
stages 2 and 3 with 1x1 projection shortcuts, global average pooling, dense 10. ResNet-20 has
272,186 trainable parameters.

fit's defaults are the measured recipe (model.defaults): 50 epochs at batch 128, SGD with Nesterov
momentum 0.9, lr 0.1 after 2 epochs of warm-up, cosine decay, weight decay 5e-4, and augmentation
{crop = 2, flip = true, erase = 0.5}. On all 60,000 training images ResNet-20 reaches 95.0% on
the test set in about 23 minutes on two cores.]],
  options = {
    { "depth", "6n + 2 layers: 8, 14, 20, 32, 44, 56, 110 (default 20)" },
    { "width", "channels of the first stage (default 16)" },
    { "seed", "seed of the initial weights" },
    { "l2", "fit's default weight decay (default 5e-4, the recipe's)" },
  },
  example = [[
local m = fm.ResNet{seed = 1}
print(m.kind, m.params)   --> ResNet 272186
]],
}

doc {
  name = "fm.MobileNet",
  sig = "fm.MobileNet{width = 1, dropout = 0.2, seed =, l2 =} -> Model",
  text = [[
A MobileNet (Howard et al.) sized for 28x28: a 3x3 stem, six depthwise-separable blocks
(depthwise 3x3 + batch norm + ReLU6, then pointwise 1x1 + batch norm + ReLU6) at 64, 128, 128,
256, 256, 256 channels with stride 2 at 28 -> 14 -> 7, global average pooling, dropout, dense 10.
width scales every channel count.

fit's defaults are the measured recipe (model.defaults): the ResNet's (SGD with Nesterov momentum,
lr 0.1 after 2 epochs of warm-up, cosine decay, weight decay 5e-4, augmentation {crop = 2, flip =
true, erase = 0.5}, batch 128) for 40 epochs. On all 60,000 training images it reaches 94.5% on the
test set in about 19 minutes on two cores.]],
  options = {
    { "width", "a factor on every channel count, 0.125 to 8 (default 1)" },
    { "dropout", "dropout before the last layer (default 0.2)" },
    { "seed", "seed of the initial weights" },
    { "l2", "fit's default weight decay (default 5e-4, the recipe's)" },
  },
  example = [[
local m = fm.MobileNet{seed = 1, width = 0.5}
print(m.kind, m.layers)   --> MobileNet 42
]],
}
