-- Help text of the functions fmnist.nets builds networks with (lua/fmnist/nets.lua): see
-- lua/fmnist/help.lua. The containers and presets themselves are in doc_nets.lua.
local doc = require("fmnist.help").section("Networks", 41)

doc {
  name = "fm.nets.compile",
  sig = "fm.nets.compile(layers [, fname]) -> flat list",
  text = [[
What fm.Model does with its layers: containers (fm.Sequential, fm.Residual) expanded into the
flat list of layers the engine builds, each layer that does not simply take the one before it
given its inputs by index ("add" joins a residual block's two branches). fname names the caller
in errors.]],
  example = [[
local flat = fm.nets.compile({fm.Residual{body = {{"dense", 32}}}, {"dense", 10}})
print(#flat, flat[2][1], table.concat(flat[2].inputs, ","))   --> 4 add 1,input
print(pcall(fm.nets.compile, 5))   --> false layers: layers must be a list of layers, got number
]],
  see = { "fm.Model", "fm.Sequential", "fm.Residual" },
}

doc {
  name = "fm.nets.resnet_layers",
  sig = "fm.nets.resnet_layers(depth, width) -> layers",
  text = [[
The layers of fm.ResNet{depth =, width =} (He et al.'s CIFAR ResNet sized for 28 x 28): a 3 x 3
stem, three stages of (depth - 2) / 6 residual blocks at width, 2 width and 4 width channels,
global average pooling and a dense layer of 10. To change it before building: edit the list and
give it to fm.Model.]],
  example = [[
local layers = fm.nets.resnet_layers(20, 16)
print(#layers, #fm.nets.compile(layers))   --> 14 72
]],
  see = { "fm.ResNet" },
}

doc {
  name = "fm.nets.mobilenet_layers",
  sig = "fm.nets.mobilenet_layers(width, dropout) -> layers",
  text = [[
The layers of fm.MobileNet{width =, dropout =}: a 3 x 3 stem, depthwise-separable blocks
(depthwise 3 x 3, pointwise 1 x 1, batch norm and ReLU6 each) with stride 2 at 28 -> 14 -> 7,
global average pooling, dropout and a dense layer of 10; width scales every channel count.]],
  example = [[
local layers = fm.nets.mobilenet_layers(1, 0.2)
print(layers[#layers][1], layers[#layers][2], layers[#layers - 1][1])   --> dense 10 dropout
]],
  see = { "fm.MobileNet" },
}

doc {
  name = "fm.nets.install",
  sig = "fm.nets.install(fm)",
  text = [[
Puts the network constructors in the module table: fm.Model and fm.CNN that take containers,
fm.Sequential, fm.Residual, fm.ResNet and fm.MobileNet. The module does it when it loads; there
is no need to call it.]],
  example = [[
print(type(fm.ResNet), type(fm.Sequential))   --> function function
]],
}
