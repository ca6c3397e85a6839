-- Models against hostile and mistaken input: layer specs and constructor options, fit, evaluate,
-- predict and the other methods with wrong types, NaN, infinities, fractions, 2^53 and sizes that
-- would overflow; models with more outputs than the dataset has classes; crafted model files.
-- Every check asserts the words of the error (which layer, which key, the valid ones, the limit).
local T = require "testlib"
local fm = require "fmnist"

local dir = T.tmpdir()

-- A small set of 28x28 images with labels 0..9 in turn, written as IDX files.
local function synthetic(name, n)
  local px, lb = {string.pack(">I4>I4>I4>I4", 0x803, n, 28, 28)}, {string.pack(">I4>I4", 0x801, n)}
  for i = 0, n - 1 do
    px[#px + 1] = string.rep(string.char(i * 37 % 256), 784)
    lb[#lb + 1] = string.char(i % 10)
  end
  T.write(dir .. "/" .. name .. "-images-idx3-ubyte", table.concat(px))
  T.write(dir .. "/" .. name .. "-labels-idx1-ubyte", table.concat(lb))
  return fm.load(dir .. "/" .. name .. "-images-idx3-ubyte")
end
local ds = synthetic("syn", 120)

local function cnn(...) local layers = {...}; return function() return fm.CNN{layers = layers} end end

-- ---- layer specs: wrong keys, types, fractions, NaN and sizes are errors naming layer and key ----
T.err("layers[1] (conv2d): unknown key 'pading' (valid keys: filters, kernel, padding",
      cnn({"conv2d", 8, 3, pading = "same"}, {"dense", 10}))
T.err("layers[1] (conv2d): filters must be an integer from 1 to 32768, got 8.7", cnn({"conv2d", 8.7, 3}, {"dense", 10}))
T.err("layers[1] (conv2d): kernel must be an integer from 1 to 32768, got 3.9", cnn({"conv2d", 8, 3.9}, {"dense", 10}))
T.err("layers[2] (maxpool): size must be an integer from 1 to 32768, got 'x'", cnn("relu", {"maxpool", "x"}, {"dense", 10}))
T.err("layers[1] (dense): units must be an integer from 1 to 32768, got 0", cnn({"dense", 0}))
T.err("layers[1] (dense): units must be an integer from 1 to 32768, got -5", cnn({"dense", -5}))
T.err("layers[1] (dense): units must be an integer from 1 to 32768, got '10'", cnn({"dense", "10"}))
T.err("layers[1] (dense): unknown key 3 (valid keys: units", cnn({"dense", 10, 20}))
T.err("layers[1] (dense): 'units' is given twice", cnn({"dense", 10, units = 10}))
T.err("layers[1] (relu): unknown key 2 (valid keys: name, inputs)", cnn({"relu", 2}, {"dense", 10}))
T.err("layers[1] (dropout): rate must be a number in [0, 1), got", cnn({"dropout", 0 / 0}, {"dense", 10}))
T.err("layers[1] (dropout): rate must be a number in [0, 1), got 1.0", cnn({"dropout", 1.0}, {"dense", 10}))
T.err("layers[1]: dropout needs rate", cnn("dropout", {"dense", 10}))
T.err("layers[1]: dense needs units, e.g. {\"dense\", 128}", cnn("dense"))
T.err("layers[1] (conv2d): padding must be \"valid\" or \"same\", not 1", cnn({"conv2d", 8, 3, padding = 1}, {"dense", 10}))
T.err("layers[1]: a layer name or a table like {\"dense\", 128} expected, got boolean", cnn(true))
T.err("layers[1]: a layer name or a table like {\"dense\", 128} expected, got 1", cnn({1, 8}))
-- the known names come from the engine's table of layer kinds
T.err("unknown layer 'conv3d' (known: dense, conv2d, maxpool, relu, dropout, flatten, batchnorm, add, avgpool, global_avgpool, relu6)", cnn({"conv3d", 8}))
T.err("CNN: layers must be a list, but it has the key 'foo'", function() return fm.CNN{layers = {{"dense", 10}, foo = 1}} end)
T.err("CNN: layers must be a list of layers, got string", function() return fm.CNN{layers = "dense"} end)
T.err("CNN: 1 to 4096 layers, not 0", function() return fm.CNN{layers = {}} end)
local many = {}
for i = 1, 4097 do many[i] = "relu" end
T.err("CNN: layers: at most 4096 entries, not 4097", function() return fm.CNN{layers = many} end)
-- a layers list with __index / __len metamethods is read raw: they never run
local lying = setmetatable({{"dense", 10}}, {__len = function() error("__len ran") end,
                                             __index = function() error("__index ran") end})
T.eq(fm.CNN{layers = lying}.params, 7850, "a list's __len and __index are not called")
-- every parameter may be named; "conv" is conv2d
T.eq(fm.CNN{layers = {{"conv", filters = 8, kernel = 5, padding = "same"}, {"maxpool", size = 2},
                      {"dense", units = 10}}}:layer(1).output, {28, 28, 8}, "parameters by key")

-- sizes that used to overflow: 2^31-1 filters, a 'same' kernel whose patch wraps int, a dense
-- stack over the parameter limit
T.err("layers[1] (conv2d): filters must be an integer from 1 to 32768, got 2147483647",
      cnn({"conv2d", 2 ^ 31 - 1, 3}, {"dense", 10}))
T.err("CNN: layer 1: conv2d: the patch matrix of one image (28x28 pixels x 1073741824 values) is over 2147483647",
      cnn({"conv2d", 8, 32768, padding = "same"}, {"dense", 10}))
T.err("CNN: layer 2 (dense): 32768 inputs x 32768 units is over 268435456 weights",
      cnn({"dense", 32768}, {"dense", 32768}, {"dense", 10}))
T.err("CNN: layer 2 (conv2d): the patch matrix of one image (12x12 pixels x 2654208 values) is over 268435456",
      cnn({"conv2d", 32768, 9}, {"conv2d", 8, 9}, {"dense", 10}))

-- ---- constructor options ----
T.err("option 'seed' must be a number, got string", function() return fm.LogReg{seed = "abc"} end)
T.err("option 'seed' must be a number, got string", function() return fm.MLP{seed = "abc"} end)
T.err("option 'seed' must be a number, got string", function() return fm.CNN{seed = "abc"} end)
T.err("option 'seed' must be an integer, got 1.5", function() return fm.CNN{seed = 1.5} end)
fm.seed(5)
local first = fm.MLP{hidden = {4}}:weights(1)
fm.seed(5)
local _ = fm.LogReg{}, fm.LogReg{seed = 3}
T.ok(fm.MLP{hidden = {4}}:weights(1) == first, "LogReg checks its seed but draws none from fm.seed's generator")
T.err("option 'l2' must be a number in [0, 3.40282e+38], got", function() return fm.LogReg{l2 = 0 / 0} end)
T.err("option 'l2' must be a number in [0, 3.40282e+38], got inf", function() return fm.MLP{l2 = math.huge} end)
T.err("option 'l2' must be a number in [0, 3.40282e+38], got -1", function() return fm.CNN{l2 = -1} end)
T.err("option 'dropout' must be a number in [0, 1), got", function() return fm.MLP{dropout = 0 / 0} end)
T.err("MLP: hidden[1] must be an integer from 1 to 32768, got 8.5", function() return fm.MLP{hidden = {8.5}} end)
T.err("MLP: hidden[2] must be an integer from 1 to 32768, got 9.007199254741e+15", function() return fm.MLP{hidden = {8, 2 ^ 53}} end)
T.err("MLP: hidden must be a list, but it has the key 'x'", function() return fm.MLP{hidden = {8, x = 1}} end)
T.err("MLP: hidden: at most 8 entries, not 9", function() return fm.MLP{hidden = {1, 2, 3, 4, 5, 6, 7, 8, 9}} end)
T.err("MLP: hidden must be a list of layer sizes, got number", function() return fm.MLP{hidden = 128} end)

-- ---- fit options ----
local m = fm.MLP{hidden = {8}, seed = 1}
local function fit(o) o.verbose = false; return function() return m:fit(ds, o) end end
T.err("option 'epochs' must be an integer from 0 to 100000, got 9.007199254741e+15", fit{epochs = 2 ^ 53})
T.err("option 'epochs' must be an integer from 0 to 100000, got -1", fit{epochs = -1})
T.err("option 'epochs' must be an integer from 0 to 100000, got 1.5", fit{epochs = 1.5})
T.err("option 'batch' must be an integer from 1 to 65536, got 4294967296", fit{batch = 2 ^ 32})
T.err("option 'lr' must be a number in (0, 3.40282e+38], got", fit{lr = 0 / 0})
T.err("option 'lr' must be a number in (0, 3.40282e+38], got 1e+300", fit{lr = 1e300})
T.err("option 'lr' must be a number in (0, 3.40282e+38], got -1", fit{lr = -1})
T.err("option 'momentum' must be a number in [0, 1), got", fit{optimizer = "sgd", momentum = 0 / 0})
T.err("fit: option 'momentum' applies only with optimizer = \"sgd\"", fit{momentum = 0.5})
T.err("fit: option 'gamma' applies only with schedule = \"step\"", fit{gamma = 0.5})
T.err("fit: option 'min_lr' applies only with schedule = \"cosine\"", fit{schedule = "constant", min_lr = 0})
T.err("option 'gamma' must be a number in (0, 3.40282e+38], got inf", fit{schedule = "step", gamma = math.huge})
T.err("option 'min_lr' must be a number in [0, 0.001], got 1", fit{min_lr = 1})
T.err("option 'weight_decay' must be a number in [0, 3.40282e+38], got", fit{weight_decay = 0 / 0})
T.err("fit: option 'schedule' must be one of \"constant\", \"step\", \"cosine\", \"onecycle\", not 3", fit{schedule = 3})
T.err("fit: option 'optimizer' must be one of \"adam\", \"sgd\", \"adamw\", not table", fit{optimizer = {}})
T.err("option 'patience' must be an integer from 0 to 100000, got -1", fit{patience = -1})
T.err("fit: option 'on_epoch' must be a function, got number", fit{on_epoch = 3})
T.err("fit: option 'validation' must be a dataset or a fraction in (0, 1), got table", fit{validation = {}})
T.err("fit: validation fraction must be in (0, 1), got", fit{validation = 0 / 0})
T.err("option 'threads' must be an integer from 1 to 64, got 1099511627776", fit{threads = 2 ^ 40})
T.err("option 'verbose' must be a number, got string", function() return m:fit(ds, {verbose = "yes"}) end)
T.err("option 'verbose' must be an integer from 0 to 2, got 3", function() return m:fit(ds, {verbose = 3}) end)
T.err("option 'shuffle' must be a boolean, got number", fit{shuffle = 1})
T.err("option 'seed' must be a number, got string", fit{seed = "abc"})
T.err("fit: option keys are names, not number", fit{[1] = 2})
T.eq(m:fit(ds, {epochs = 0, verbose = false}).epochs, 0, "epochs = 0 trains nothing (also with the cosine schedule)")
T.eq(m.epochs, 0, "and counts no epoch")

-- ---- the other methods ----
T.err("evaluate: unknown option 'thread' (known: threads)", function() return m:evaluate(ds, {thread = 1}) end)
T.err("option 'threads' must be an integer from 1 to 64, got 1.5", function() return m:evaluate(ds, {threads = 1.5}) end)
T.err("predict: unknown option 'x' (known: threads)", function() return m:predict(ds, {x = 1}) end)
T.err("predict_proba: unknown option 'x' (known: threads)", function() return m:predict_proba(ds, {x = 1}) end)
T.err("summary: unknown option 'printt' (known: print)", function() return m:summary{printt = false} end)
T.err("option 'print' must be a boolean, got string", function() return m:summary{print = "no"} end)
T.err("layer 9007199254740992 out of range 1..4", function() return m:weights(2 ^ 53) end)
T.err("number has no integer representation", function() return m:weights(0 / 0) end)
local w, b = m:weights(1)
local bad = w:clone()
bad:set(3, 2, 0 / 0)
T.err("set_weights: layer 1 (dense): weight 18 is not finite", function() m:set_weights(1, bad) end)
b:set(1, math.huge)
T.err("set_weights: layer 1 (dense): bias 1 is not finite (inf)", function() m:set_weights(1, w, b) end)
T.err("set_weights: layer 1 (dense) has 6272 weights, not 3", function() m:set_weights(1, fm.zeros(3)) end)
T.eq(m:weights(1), w, "a refused set_weights changes nothing")
T.err("gradient_wrt_input: class -nan (entry 1) is not a class id 0..9",
      function() return m:gradient_wrt_input(ds:image(1), fm.tensor{0 / 0}) end)
T.err("gradient_wrt_input: class 9.007199254741e+15 is not a class id 0..9",
      function() return m:gradient_wrt_input(ds:image(1), 2 ^ 53) end)
T.err("(class id or fmnist.Tensor of class ids expected, got table)",
      function() return m:gradient_wrt_input(ds:image(1), {}) end)
T.err("layer 99 out of range 1..4", function() return m:activations(ds:image(1), 99) end)
T.err("a file name cannot hold a zero byte", function() return m:save(dir .. "/a\0b") end)
T.err("a file name cannot hold a zero byte", function() return fm.load_model(dir .. "/a\0b") end)
m.info.note = "a\0b"
T.err("save: info key 'note' or its value holds '=', a newline or a zero byte", function() return m:save(dir .. "/m.fmn") end)
m.info.note = 0.1
m:save(dir .. "/m.fmn")
T.eq(fm.load_model(dir .. "/m.fmn").info.note, "0.1", "a number in info is saved in its shortest exact form")

-- ---- more outputs than the dataset's classes: a model with 12 outputs on labels 0..9 ----
local twelve = fm.CNN{layers = {"flatten", {"dense", 12}}, seed = 1}
local tw, tb = twelve:weights(2)
local bias = fm.zeros(12)
bias:set(12, 100) -- every image is predicted as class 11
twelve:set_weights(2, fm.zeros(784, 12), bias)
local pred = twelve:predict(ds)
T.eq({pred:min(), pred:max()}, {11, 11}, "predict gives the model's classes beyond 9")
local r = twelve:evaluate(ds)
T.eq(r.confusion:shape(), {12, 12}, "evaluate: a 12 x 12 confusion matrix")
T.eq(r.confusion:get(1, 12), 12, "labels 0 predicted as 11 are counted in column 12")
T.eq(r.accuracy, 0, "accuracy 0")
T.eq(#r.classes, 12, "twelve class names")
T.eq(r.classes[12], "11", "classes beyond the dataset's are named by their id")
T.ok(r:report():find("11", 1, true), "the report shows the extra class")
local same = fm.metrics(ds:labels(), pred, {classes = 12})
T.eq(same.confusion, r.confusion, "fm.metrics{classes = 12} on the predictions agrees with evaluate")
T.err("y_pred[1] = 11.0 is not a class id 0..9", function() return fm.metrics(ds:labels(), pred) end)
T.err("option 'classes' must be an integer from 2 to 256, got 300", function() return fm.metrics(pred, pred, {classes = 300}) end)
T.err("metrics: unknown option 'class' (known: classes)", function() return fm.metrics(pred, pred, {class = 3}) end)
local h = twelve:fit(ds, {epochs = 1, lr = 1e-7, verbose = false, validation = ds})
T.eq(h.val_accuracy[1], 0, "fit validation with 12 outputs: every prediction is class 11")
twelve:set_weights(2, tw, tb)
T.ok(twelve:fit(ds, {epochs = 1, verbose = false, validation = 0.25}).epochs == 1, "fit with a held-out fraction and 12 outputs")
T.err("is not a class of this network (0 to 1)", function() fm.CNN{layers = {"flatten", {"dense", 2}}}:fit(ds, {epochs = 1, verbose = false}) end)
T.err("predict: label 2 of image", function() fm.CNN{layers = {"flatten", {"dense", 2}}}:evaluate(ds) end)

-- ---- crafted model files: consistent checksum, absurd contents ----
-- The layout of fm_modelfile.h, with a CRC32 computed here.
local crc_table = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do c = (c & 1 ~= 0) and (0xEDB88320 ~ (c >> 1)) or (c >> 1) end
  crc_table[i] = c
end
local function crc32(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do c = crc_table[(c ~ s:byte(i)) & 0xFF] ~ (c >> 8) end
  return c ~ 0xFFFFFFFF
end
local function model_file(o)
  local layers = {}
  for _, l in ipairs(o.layers) do
    layers[#layers + 1] = string.pack("<I4i4i4i4i4i4fI4", l[1], l[2] or 0, l[3] or 0, l[4] or 0,
                                      l[5] or 0, l[6] or 0, l[7] or 0, l[8] or 0)
  end
  local meta = o.meta or ""
  local header = string.pack("<c16I4I4I4I4", o.kind or "CNN", o.h or 28, o.w or 28, o.c or 1, o.n_layers or #o.layers)
      .. table.concat(layers) .. string.pack("<I8I4", o.n_params, o.meta_bytes or #meta) .. meta
  local body = "FMNISTMD" .. string.pack("<I4I4", 1, #header) .. header .. string.rep("\0", 4 * (o.weights or o.n_params))
  return body .. string.pack("<I4", crc32(body))
end
local function load_crafted(name, o)
  T.write(dir .. "/" .. name, model_file(o))
  return function() return fm.load_model(dir .. "/" .. name) end
end
-- a dense layer of 784 x 10 in a file this code writes is a model
local ok_file = load_crafted("ok.fmn", {layers = {{1, 10}}, n_params = 7850})
T.eq(ok_file().params, 7850, "a crafted file with the right sizes loads")
T.err("huge.fmn: corrupt model file (2147483648 layers)", load_crafted("huge.fmn", {layers = {{1, 10}}, n_layers = 2 ^ 31, n_params = 7850}))
T.err("params.fmn: corrupt model file (7849 weights for a network of 7850)", load_crafted("params.fmn", {layers = {{1, 10}}, n_params = 7849}))
T.err("kind.fmn: corrupt model file (layer 1: unknown kind 77)", load_crafted("kind.fmn", {layers = {{77, 10}}, n_params = 7850}))
T.err("rate.fmn: corrupt model file (layer 1 (dropout): rate must be in [0, 1) (got",
      load_crafted("rate.fmn", {layers = {{5, 0, 0, 0, 0, 0, 0 / 0}, {1, 10}}, n_params = 7850}))
T.err("units.fmn: corrupt model file (layer 1 (dense): units must be 1 to 32768 (got -1)",
      load_crafted("units.fmn", {layers = {{1, -1}}, n_params = 7850}))
T.err("shape.fmn: corrupt model file (network: an input of 32768x32768x32768 is over 268435456 floats per image)",
      load_crafted("shape.fmn", {layers = {{1, 10}}, h = 32768, w = 32768, c = 32768, n_params = 7850}))
T.err("unused.fmn: corrupt model file (layer 1 (relu): units is not used by relu layers and must be 0 (got 5)",
      load_crafted("unused.fmn", {layers = {{4, 5}, {1, 10}}, n_params = 7850}))
T.err("meta.fmn: corrupt model file (metadata of 4294967295 bytes, over 1048576)", load_crafted("meta.fmn", {layers = {{1, 10}}, n_params = 7850, meta_bytes = 0xFFFFFFFF}))
T.err("nul.fmn: corrupt model file (a NUL byte in the metadata text)", load_crafted("nul.fmn", {layers = {{1, 10}}, n_params = 7850, meta = "a=b\0c=d\n"}))
T.err("epochs.fmn: corrupt model file (epochs_trained=1e300 is not a count)", load_crafted("epochs.fmn", {layers = {{1, 10}}, n_params = 7850, meta = "epochs_trained=1e300\n"}))
T.done()
