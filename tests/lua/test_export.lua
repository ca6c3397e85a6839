-- test_export: model:export_onnx and model:export_npy.
--   - errors: bad arguments, a directory, a symbolic link, a missing folder, a non-directory for
--     export_npy, a file name taken by a directory; nothing already there is lost;
--   - index.json and the .npy files read back here (fm.json, fm.load_npy) equal the weights;
--   - with Debian's python3-onnx (/usr/bin/python3): onnx.checker.check_model(full_check=True)
--     passes for every kind, the graph is what the export promises (ops, names, pads, groups,
--     metadata), and its initializers equal the .npy files after the layout change;
--   - with python3-numpy: numpy reads every .npy file the index names, in the index's shapes;
--   - with ONNX Runtime for Node.js (tests/onnx/install_ort.sh, which `make deps` runs): after a
--     short training of each kind, the probabilities of 1,000 test images differ from
--     predict_proba's by at most 1e-5, the logits of 20 images from the engine's last layer by at
--     most 1e-4, and the top class never.
-- Without one of those tools its checks are TAP skips that say what is missing. FMNIST_PYTHON
-- (default /usr/bin/python3) and FMNIST_ORT_DIR (default build/onnxruntime) say where they are.
local T = require "testlib"
local fm = require "fmnist"
local json = require "fmnist.json"

local PY = os.getenv("FMNIST_PYTHON") or "/usr/bin/python3" -- Debian's, where python3-onnx installs
local ORT_DIR = os.getenv("FMNIST_ORT_DIR") or "build/onnxruntime"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Runs a shell command; returns its output (stdout and stderr) and whether it succeeded.
local function run(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end

local have_onnx = os.execute(PY .. " -c 'import onnx, numpy' >/dev/null 2>&1")
local have_numpy = os.execute(PY .. " -c 'import numpy' >/dev/null 2>&1")
local have_ort = os.execute("NODE_PATH=" .. q(ORT_DIR .. "/node_modules")
  .. " node -e \"require('onnxruntime-node').InferenceSession\" >/dev/null 2>&1")
local have_dataset = pcall(fm.load, "test")
local NO_ONNX = "python3-onnx is not installed for " .. PY .. " (apt-get install python3-onnx)"
local NO_NUMPY = "python3-numpy is not installed for " .. PY .. " (apt-get install python3-numpy)"
local NO_ORT = "onnxruntime-node is not in " .. ORT_DIR .. " (run: sh tests/onnx/install_ort.sh, "
  .. "or make deps; it needs node and npm)"
local NO_DATASET = "the Fashion-MNIST dataset is not installed (apt-get install dataset-fashion-mnist)"

local dir = T.tmpdir()

-- ---- errors ----
do
  local m = fm.LogReg {}
  T.err("bad argument #1 to 'export_onnx' (string expected, got no value)", function() m:export_onnx() end)
  T.err("string expected, got number", function() m:export_onnx(42) end)
  T.err("a file name cannot hold a zero byte", function() m:export_onnx(dir .. "/a\0b") end)
  T.err("the file name is empty", function() m:export_onnx("") end)
  T.err("fmnist.Model expected", function() m.export_onnx(fm.zeros(1), dir .. "/x.onnx") end)
  T.err("bad argument #1 to 'export_npy' (string expected, got table)", function() m:export_npy({}) end)
  T.err("a directory name cannot hold a zero byte", function() m:export_npy(dir .. "/a\0b") end)

  -- a directory where the file should go
  os.execute("mkdir " .. q(dir .. "/adir"))
  T.err("export_onnx: " .. dir .. "/adir: is a directory, not a regular file; not replacing it",
    function() m:export_onnx(dir .. "/adir") end)
  -- a symbolic link: refused, and what it points to is untouched
  T.write(dir .. "/target", "precious")
  os.execute("ln -s target " .. q(dir .. "/link"))
  T.err("export_onnx: " .. dir .. "/link: is a symbolic link; not replacing it",
    function() m:export_onnx(dir .. "/link") end)
  T.eq(T.read(dir .. "/target"), "precious", "the file behind the link is untouched")
  -- a folder that does not exist
  T.err("export_onnx: " .. dir .. "/missing/m.onnx: cannot write (No such file or directory)",
    function() m:export_onnx(dir .. "/missing/m.onnx") end)
  -- an existing file is replaced whole, keeping its permissions; no temporary file is left
  T.write(dir .. "/old.onnx", "old contents")
  os.execute("chmod 640 " .. q(dir .. "/old.onnx"))
  T.eq(m:export_onnx(dir .. "/old.onnx"), dir .. "/old.onnx", "export_onnx returns the path")
  local data = T.read(dir .. "/old.onnx")
  T.ok(data ~= "old contents" and #data > 7850 * 4, "the old file was replaced (" .. #data .. " bytes)")
  T.eq(run("stat -c %a " .. q(dir .. "/old.onnx")), "640\n", "its permissions are kept")
  T.eq(run("ls " .. q(dir) .. " | grep -c tmp"), "0\n", "no temporary file is left behind")

  -- export_npy: a regular file, a link or a missing parent where the folder should be
  T.write(dir .. "/plain", "keep me")
  T.err("export_npy: " .. dir .. "/plain: exists and is not a directory; not replacing it",
    function() m:export_npy(dir .. "/plain") end)
  T.eq(T.read(dir .. "/plain"), "keep me", "the file where the folder was asked is untouched")
  os.execute("ln -s adir " .. q(dir .. "/dirlink"))
  T.err("export_npy: " .. dir .. "/dirlink: is a symbolic link; not writing through it",
    function() m:export_npy(dir .. "/dirlink") end)
  T.err("export_npy: " .. dir .. "/no/such: cannot create the directory (No such file or directory)",
    function() m:export_npy(dir .. "/no/such") end)
  -- a file name of the export taken by a directory: the error names that file
  os.execute("mkdir -p " .. q(dir .. "/taken/01_dense_weight.npy"))
  T.err("export_npy: " .. dir .. "/taken/01_dense_weight.npy: is a directory",
    function() m:export_npy(dir .. "/taken") end)
  T.ok(not T.read(dir .. "/taken/index.json"), "no index is written when a file could not be")
end

-- ---- the models: every kind, and a graph with every layer kind and form change ----
local function graph_model()
  return fm.Model { kind = "Graph", seed = 1, layers = {
    { "conv2d", 8, 3, padding = "same", stride = 2, name = "stem" }, -- 28 -> 14: pads 0, 0, 1, 1
    "batchnorm", "relu6",
    { "conv2d", 8, 3, padding = "same", groups = 8, bias = false }, -- depthwise
    "batchnorm",
    { "add", inputs = { -1, "stem" } }, "relu",
    { "avgpool", 2 },
    { "conv2d", 6, 2, padding = "same", stride = 2 }, -- 7 -> 4, an even kernel: pads 0, 0, 1, 1
    { "maxpool", 2 },
    "flatten",                                        -- 2x2x6: the engine's HWC order
    { "dense", 16, name = "d1" }, "batchnorm", "relu", -- batch norm of a flat tensor
    { "dropout", 0.3, name = "drop" },
    { "dense", 16, name = "d2" },
    { "conv2d", 16, 1 },                              -- a flat tensor into a convolution
    "global_avgpool",
    { "add", inputs = { -1, "d2", "drop" } },         -- three inputs, of both forms
    "relu6",
    { "dense", 10 } } }
end

local kinds = {
  { "LogReg", function() return fm.LogReg { seed = 1 } end },
  { "MLP", function() return fm.MLP { seed = 1 } end },
  { "CNN", function() return fm.CNN { seed = 1 } end },
  { "ResNet", function() return fm.ResNet { seed = 1 } end },
  { "MobileNet", function() return fm.MobileNet { seed = 1 } end },
  { "Graph", graph_model },
}

-- Trained briefly (512 images, one epoch) so that no weight and no running statistic is at its
-- initial value; untrained when the dataset is missing.
local fit_set = have_dataset and fm.load("train"):subset(1, 512)
local models = {}
for _, k in ipairs(kinds) do
  local m = k[2]()
  if fit_set then m:fit(fit_set, { epochs = 1, batch = 64, seed = 1, verbose = false }) end
  models[k[1]] = m
end

-- The batch-norm layers' running statistics moved away from 0 and 1.
if fit_set then
  for _, name in ipairs { "ResNet", "MobileNet", "Graph" } do
    local m, moved, layers = models[name], true, 0
    for i = 1, m.layers do
      if m:layer(i).type == "batchnorm" then
        local _, _, mean, var = m:weights(i)
        layers = layers + 1
        moved = moved and mean:abs():max() > 1e-3 and (var - 1):abs():max() > 1e-3
      end
    end
    T.ok(layers > 0 and moved, name .. ": every batch norm's running mean and variance were trained ("
      .. layers .. " layers)")
  end
else
  T.skip("batch norm's running statistics are trained", NO_DATASET)
end

-- ---- export_npy: the index and the files, read back here ----
local npy_dirs = {}
for _, k in ipairs(kinds) do
  local name, m = k[1], models[k[1]]
  local out = dir .. "/npy_" .. name
  T.eq(m:export_npy(out), out, name .. ": export_npy makes the folder and returns it")
  npy_dirs[name] = out
  local index = json.decode(T.read(out .. "/index.json"))
  T.eq({ index.format, index.kind, #index.layers, index.params }, { "fmnist-lua npy export", name, m.layers, m.params },
    name .. ": index.json: format, kind, layers, parameters")
  local same, files = true, 0
  for i, layer in ipairs(index.layers) do
    local info = m:layer(i)
    same = same and layer.index == i and layer.kind == info.type
    if #layer.files > 0 then
      local w = { m:weights(i) }
      for j, part in ipairs(layer.files) do
        local t = fm.load_npy(out .. "/" .. part.file)
        files = files + 1
        same = same and table.concat(t:shape(), "x") == table.concat(part.shape, "x") and t == w[j]
        if not same then print("# differs: " .. part.file) end
      end
    end
  end
  T.ok(same and files > 0, name .. ": every .npy file (" .. files .. ") holds the layer's tensor, in the index's shape")
end
do
  local index = json.decode(T.read(npy_dirs.Graph .. "/index.json"))
  local l1, l4, l13, l19 = index.layers[1], index.layers[4], index.layers[13], index.layers[19]
  T.eq({ l1.name, l1.inputs, l1.fields.kernel, l1.fields.padding, l1.fields.stride, l1.input_shape, l1.output_shape },
    { "conv2d_1", { "input" }, { 3, 3 }, "same", 2, { 28, 28, 1 }, { 14, 14, 8 } },
    "index.json: a layer's name, inputs, fields and shapes")
  T.eq({ l4.fields.groups, l4.fields.bias, #l4.files, l4.files[1].file, l4.files[1].shape },
    { 8, false, 1, "04_conv2d_weight.npy", { 3, 3, 1, 8 } }, "index.json: a depthwise convolution without bias")
  T.eq({ l13.fields.eps, l13.fields.momentum, l13.files[3].role, l13.files[4].file },
    { 1e-05, 0.9, "running_mean", "13_batchnorm_running_var.npy" }, "index.json: batch norm's fields and its four files")
  T.eq({ l19.name, l19.inputs, l19.fields, l19.files }, { "add_2", { "global_avgpool_1", "dense_2", "dropout_1" }, nil, {} },
    "index.json: an add of three inputs, without fields or files")
  -- exporting again over the same folder replaces the files
  T.eq(models.Graph:export_npy(npy_dirs.Graph .. "/"), npy_dirs.Graph .. "/", "export_npy into an existing folder (a trailing slash is fine)")
end

-- A kind that is not UTF-8 (any bytes may name a model) is cleaned, not refused: JSON and
-- protobuf strings are UTF-8.
do
  local m = fm.Model { kind = "\xffk\"1", layers = { { "dense", 10 } } }
  local out = dir .. "/oddkind"
  m:export_npy(out)
  m:export_onnx(out .. ".onnx")
  T.eq(json.decode(T.read(out .. "/index.json")).kind, "?k\"1", "index.json: a kind that is not UTF-8, cleaned")
  T.ok(T.read(out .. ".onnx"):find("?k\"1", 1, true), "the ONNX file: the same")
end

-- From 100 layers on, layer numbers have three digits (names still sort in layer order).
do
  local deep = fm.ResNet { depth = 44, width = 1, seed = 1 }
  local out = dir .. "/deep"
  deep:export_npy(out)
  deep:export_onnx(out .. ".onnx")
  local index = json.decode(T.read(out .. "/index.json"))
  local data = T.read(out .. ".onnx")
  T.ok(deep.layers >= 100 and index.layers[1].files[1].file == "001_conv2d_weight.npy"
    and T.read(out .. "/" .. index.layers[deep.layers].files[1].file)
    and data:find("001_conv2d_weight", 1, true)
    and data:find(("%03d_dense_weight"):format(deep.layers), 1, true),
    ("a network of %d layers: files and graph names with three-digit numbers"):format(deep.layers))
end

if have_numpy then
  for _, k in ipairs(kinds) do
    local out, ok = run(PY .. " tests/onnx/check_npy.py " .. q(npy_dirs[k[1]]))
    local layers, files = out:match("index (%d+) layers (%d+) files, shapes as the index says")
    T.ok(ok and tonumber(layers) == models[k[1]].layers, k[1] .. ": numpy reads every file in the index's shape ("
      .. tostring(files) .. " files)")
    if not ok then print("# " .. out:gsub("\n", "\n# ")) end
    local _, _, _, _, sum = out:match("file (01_%w+_weight.npy) (%S+) (float32) ()(%S+)")
    local w = models[k[1]]:weights(1)
    T.near(tonumber(sum), w:sum(), 1e-3 * (1 + math.abs(w:sum())), k[1] .. ": numpy's sum of layer 1's weights is the engine's")
  end
else
  T.skip("numpy reads the .npy files", NO_NUMPY)
end

-- ---- export_onnx: ONNX's checker and the graph ----
local onnx_files = {}
for _, k in ipairs(kinds) do
  local path = dir .. "/" .. k[1] .. ".onnx"
  models[k[1]]:export_onnx(path)
  onnx_files[k[1]] = path
end

-- check_onnx.py's lines as a table: key -> list of the rest of the lines with that key.
local function parse_check(out)
  local t = {}
  for line in out:gmatch("[^\n]+") do
    local key, rest = line:match("^(%S+) ?(.*)$")
    t[key] = t[key] or {}
    table.insert(t[key], rest)
  end
  return t
end

local function ops_of(c)
  local ops = {}
  for _, n in ipairs(c.node or {}) do ops[#ops + 1] = n:match("^%S+ (%S+)") end
  return table.concat(ops, " ")
end

local function node_named(c, name)
  for _, n in ipairs(c.node or {}) do
    if n:match("^(%S+)") == name then return n end
  end
end

if have_onnx then
  local checks = {}
  for _, k in ipairs(kinds) do
    local out, ok = run(PY .. " tests/onnx/check_onnx.py " .. q(onnx_files[k[1]]) .. " " .. q(npy_dirs[k[1]]))
    local c = parse_check(out)
    checks[k[1]] = c
    T.ok(ok and c.checker and c.checker[1] == "ok", k[1] .. ": onnx.checker.check_model(full_check = true) passes")
    if not ok then print("# " .. out:gsub("\n", "\n# ")) end
    T.eq({ c.ir and c.ir[1], c.opset and c.opset[1], c.producer and c.producer[1], c.meta_model_kind and c.meta_model_kind[1] },
      { "8", "13", "fmnist-lua " .. fm.version, k[1] }, k[1] .. ": IR version 8, opset 13, the producer and the model kind")
    T.eq({ c.input, c.output }, { { "input N,1,28,28" }, { "probabilities N,10", "logits N,10" } },
      k[1] .. ": input N x 1 x 28 x 28, outputs probabilities and logits N x 10")
    local classes = c.meta_classes and json.decode(c.meta_classes[1])
    T.eq(classes and { #classes, classes[1], classes[10] }, { 10, "T-shirt/top", "Ankle boot" }, k[1] .. ": the class names")
    T.ok(c.weights_match and tonumber(c.weights_match[1]) > 0 and not c.weights_differ,
      k[1] .. ": every initializer equals the engine's tensor after the layout change ("
      .. tostring(c.weights_match and c.weights_match[1]) .. ")")
    T.ok(not ops_of(c):find("Dropout"), k[1] .. ": no dropout in inference")
    T.ok(ops_of(c):find("Identity Softmax$"), k[1] .. ": the logits, then their softmax")
  end
  T.eq(ops_of(checks.LogReg), "Flatten Gemm Identity Softmax", "LogReg: one channel flattens without a Transpose")
  T.eq(ops_of(checks.CNN), "Conv Relu MaxPool Conv Relu MaxPool Transpose Flatten Gemm Relu Gemm Identity Softmax",
    "CNN: Transpose to NHWC before Flatten (the engine flattens HWC)")
  T.ok(node_named(checks.CNN, "06_maxpool_nhwc"):find("perm=0,2,3,1", 1, true), "CNN: the Transpose is to NHWC")
  T.eq(node_named(checks.CNN, "01_conv2d"),
    "01_conv2d Conv input,01_conv2d_weight,01_conv2d_bias kernel_shape=3,3;strides=1,1;pads=0,0,0,0;dilations=1,1;group=1",
    "CNN: a valid convolution, names readable")
  local g = checks.Graph
  T.ok(node_named(g, "01_conv2d"):find("strides=2,2;pads=0,0,1,1", 1, true), "same padding, stride 2: the extra pad at the bottom/right")
  T.ok(node_named(g, "04_conv2d"):find("03_relu6,04_conv2d_weight kernel_shape=3,3;strides=1,1;pads=1,1,1,1;dilations=1,1;group=8", 1, true),
    "a depthwise convolution: group = channels, no bias input")
  T.ok(node_named(g, "09_conv2d"):find("kernel_shape=2,2;strides=2,2;pads=0,0,1,1", 1, true), "an even kernel with same padding")
  T.ok(node_named(g, "02_batchnorm"):find("epsilon=1e-05;momentum=0.9", 1, true), "batch norm: the spec's epsilon and momentum")
  T.ok(node_named(g, "03_relu6"):find("Clip 02_batchnorm,clip_min,clip_max", 1, true), "relu6 as Clip(0, 6)")
  T.ok(node_named(g, "08_avgpool"):find("AveragePool 07_relu kernel_shape=2,2;strides=2,2", 1, true), "average pooling")
  T.ok(node_named(g, "13_batchnorm"):find("BatchNormalization 12_dense,", 1, true), "batch norm of a flat tensor")
  T.ok(node_named(g, "16_dense_nchw"):find("Reshape 16_dense,16_dense_nchw_shape", 1, true), "a flat tensor reshaped for a convolution")
  T.ok(node_named(g, "19_add_sum2") and node_named(g, "19_add"):find("Add 19_add_sum2,14_relu_nchw", 1, true),
    "three inputs added in order, the dropout left out")
  T.ok(ops_of(checks.MobileNet):find("GlobalAveragePool Flatten Gemm", 1, true), "MobileNet: global average pooling, then Gemm")
  T.ok(ops_of(checks.ResNet):find("BatchNormalization Add Relu", 1, true), "ResNet: the residual Add")
else
  T.skip("onnx.checker.check_model(full_check = true) on every kind", NO_ONNX)
end

-- ---- ONNX Runtime computes what the engine does ----
if not have_dataset then
  T.skip("ONNX Runtime gives the engine's probabilities", NO_DATASET)
elseif not have_ort then
  T.skip("ONNX Runtime gives the engine's probabilities", NO_ORT)
else
  local test = fm.load("test"):subset(1, 1000)
  local images = dir .. "/images.npy"
  test:images():save_npy(images)
  local x20 = test:subset(1, 20):images()
  for _, k in ipairs(kinds) do
    local name, m = k[1], models[k[1]]
    local probs, logits = dir .. "/" .. name .. "_probs.npy", dir .. "/" .. name .. "_logits.npy"
    m:predict_proba(test):save_npy(probs)
    local rows = {}
    for i = 1, 20 do rows[i] = m:activations(x20:rows(i), m.layers):totable() end
    fm.tensor(rows):save_npy(logits)
    local out, ok = run("NODE_PATH=" .. q(ORT_DIR .. "/node_modules") .. " node tests/onnx/ort_compare.js "
      .. q(onnx_files[name]) .. " " .. q(images) .. " " .. q(probs) .. " " .. q(logits))
    local n, pdiff, ldiff, differs = out:match("rows (%d+) classes 10 prob_max_abs_diff (%S+) logit_max_abs_diff (%S+) argmax_differs (%d+)")
    print(("# %s: 1000 images, max |p_engine - p_onnxruntime| = %s, max |logit difference| (20 images) = %s"):format(
      name, tostring(pdiff), tostring(ldiff)))
    if not (ok and n) then print("# " .. out:gsub("\n", "\n# ")) end
    T.ok(ok and n == "1000" and tonumber(pdiff) <= 1e-5, name .. ": the probabilities agree within 1e-5 (" .. tostring(pdiff) .. ")")
    T.ok(ok and tonumber(ldiff) and tonumber(ldiff) <= 1e-4, name .. ": the logits agree within 1e-4 (" .. tostring(ldiff) .. ")")
    T.eq(differs, "0", name .. ": the same top class for every image")
  end
end

T.done()
