-- Help text of the exports (lua/l_export.c, engine/fm_onnx.c): see lua/fmnist/help.lua.
local doc = require("fmnist.help").section("Exports", 42, [[
A trained model for other programs: an ONNX file that ONNX Runtime, OpenCV or TensorRT can run,
and its weights as .npy files that numpy reads, with an index.json describing the layers.]])

doc {
  name = "Model:export_onnx",
  sig = "model:export_onnx(path) -> path",
  text = [[
Writes the model as an ONNX file (IR version 8, opset 13) that computes what predict_proba does.
Its input "input" is float32 of shape N x 1 x 28 x 28 (NCHW: N images, one channel, rows, columns)
with pixels scaled to [0, 1], as fm.image and Dataset:images give them; its outputs are
"probabilities" (the softmax, N x 10) and "logits" (the last layer's scores, N x 10). Batch norm
uses its running statistics and dropout is left out, as in inference. Convolution weights are
transposed to ONNX's OIHW, "same" padding becomes explicit pads (the odd one at the bottom and
right, as the engine does), and a dense layer after a convolution is preceded by a Transpose to
NHWC so that it flattens in the engine's order. Nodes are named after the layers ("03_maxpool");
the metadata hold the producer, the model kind and the class names. The file is written through
a temporary file, so a failed export leaves whatever was at path as it was; a directory or a
symbolic link at path is refused. In Python: onnxruntime.InferenceSession(path).run(None,
{"input": x.reshape(-1, 1, 28, 28)}).]],
  example = [[
local path = os.tmpname()
local model = fm.CNN{seed = 1}
print(model:export_onnx(path) == path)   --> true
local f = assert(io.open(path, "rb"))
local bytes = f:read("a")
f:close()
print(bytes:find("03_maxpool", 1, true) ~= nil, #bytes > 4 * model.params)   --> true true
os.remove(path)
]],
  see = { "Model:export_npy", "Model:save" },
}

doc {
  name = "Model:export_npy",
  sig = "model:export_npy(dir) -> dir",
  text = [[
Writes every parameter and state tensor of the model into the folder dir (made if missing; an
existing file or symbolic link there is refused) as float32 .npy files named by layer number,
kind and role — "01_conv2d_weight.npy", "01_conv2d_bias.npy", "05_batchnorm_running_var.npy" —
in the engine's own layout: dense weights [inputs, units] (inputs flattened in HWC order), conv2d
weights [kh, kw, input channels / groups, filters] (HWIO), batch norm's scale, shift, running mean
and running variance per channel. index.json lists the layers: index, kind, name (as the summary
shows it), inputs (names, or "input"), fields (filters, kernel, padding, ...), input and output
shapes (height, width, channels), parameter count and files (role, file, shape); also the model
kind, the input shape and the class names. Each file is written through a temporary file, and the
index last; other files in dir are left as they are. In Python: json.load(open(dir + "/index.json")) and numpy.load(dir + "/" + file).]],
  example = [[
local dir = os.tmpname()
os.remove(dir)
local model = fm.CNN{seed = 1}
model:export_npy(dir)
local f = assert(io.open(dir .. "/index.json"))
local index = fm.json.decode(f:read("a"))
f:close()
local first = index.layers[1].files[1]
print(first.file, table.concat(first.shape, "x"))   --> 01_conv2d_weight.npy 3x3x1x32
print(fm.load_npy(dir .. "/" .. first.file) == model:weights(1))   --> true
os.execute("rm -r '" .. dir .. "'")
]],
  see = { "Model:export_onnx", "Model:weights", "fm.load_npy" },
}
