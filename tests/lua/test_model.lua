-- Models from Lua: building, fit/evaluate/predict on a few thousand real images (or a synthetic set
-- when Fashion-MNIST is not installed), determinism, save/load, bad model files, divergence, and
-- the errors of wrong arguments.
local T = require "testlib"
local fm = require "fmnist"

local dir = T.tmpdir()

-- The data: 3000 training and 1000 test images of the real set, or a synthetic set of ten
-- distinguishable patterns written as IDX files.
local ok, full = pcall(fm.load, "train")
local train, test
if ok then
  train = full:subset(1, 3000)
  test = fm.load("test"):subset(1, 1000)
else
  local function write_set(name, n, seed)
    local rng = seed
    local function rnd() rng = (rng * 1103515245 + 12345) % 2147483648; return rng / 2147483648 end
    local px, lb = {string.pack(">I4>I4>I4>I4", 0x803, n, 28, 28)}, {string.pack(">I4>I4", 0x801, n)}
    for i = 0, n - 1 do
      local c = i % 10
      local img = {}
      for p = 0, 783 do
        local on = (p // 28) // 3 == c or (p % 28) // 3 == c
        img[p + 1] = string.char(math.floor((on and 180 or 20) + rnd() * 60))
      end
      px[#px + 1] = table.concat(img)
      lb[#lb + 1] = string.char(c)
    end
    T.write(dir .. "/" .. name .. "-images-idx3-ubyte", table.concat(px))
    T.write(dir .. "/" .. name .. "-labels-idx1-ubyte", table.concat(lb))
    return fm.load(dir .. "/" .. name .. "-images-idx3-ubyte")
  end
  train, test = write_set("syn-train", 3000, 1), write_set("syn-test", 1000, 2)
  T.ok(true, "# Fashion-MNIST not installed: synthetic data")
end

-- building
local cnn = fm.CNN{seed = 1}
T.eq(cnn.params, 225034, "reference CNN: 225,034 parameters")
T.eq(cnn.kind, "CNN", "kind")
T.eq(cnn.layers, 11, "reference CNN: 11 layers")
local s = cnn:summary{print = false}
T.ok(s:find("conv2d_1 (Conv2D)           (None, 26, 26, 32)        320", 1, true), "summary: conv row")
T.ok(s:find("Total params: 225,034", 1, true), "summary: total")
T.eq(fm.MLP{hidden = {256, 128}}.params, 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10, "MLP parameters")
T.eq(fm.LogReg{}.params, 7850, "LogReg parameters")
T.eq(fm.CNN{}.defaults.epochs, 15, "model.defaults: the CNN trains 15 epochs")
T.eq(fm.LogReg{l2 = 1e-4}.defaults.weight_decay, 1e-4, "LogReg{l2} is the default weight decay")
T.eq(fm.CNN{}.defaults.augment, false, "the original models train on plain images")
T.eq(fm.CNN{}.defaults.optimizer, "adam", "the CNN trains with Adam")
local rd = fm.ResNet{seed = 1}.defaults
T.eq({rd.epochs, rd.batch, rd.lr, rd.optimizer, rd.nesterov, rd.schedule, rd.warmup, rd.weight_decay},
     {50, 128, 0.1, "sgd", true, "cosine", 2, 5e-4}, "the ResNet recipe: SGD, Nesterov, warm-up, cosine")
T.eq(rd.augment, {crop = 2, flip = true, erase = 0.5}, "the ResNet recipe augments")
T.eq(fm.ResNet{l2 = 0}.defaults.weight_decay, 0, "ResNet{l2} replaces the recipe's weight decay")
local md = fm.MobileNet{seed = 1}.defaults
T.eq({md.epochs, md.batch, md.lr, md.optimizer, md.nesterov, md.warmup, md.weight_decay, md.augment},
     {40, 128, 0.1, "sgd", true, 2, 5e-4, {crop = 2, flip = true, erase = 0.5}}, "the MobileNet recipe")
T.eq(fm.Model{kind = "ResNet", layers = {"flatten", {"dense", 10}}}.defaults.optimizer, "sgd",
     "the defaults follow the kind")
local custom = fm.CNN{layers = {{"conv2d", 8, 5, padding = "same"}, "relu", {"maxpool", 2}, "flatten", {"dense", 10}}}
T.eq(custom:layer(1).output, {28, 28, 8}, "custom CNN: 'same' padding keeps 28x28")
T.eq(custom:layer(3).output, {14, 14, 8}, "custom CNN: max-pool halves")
T.err("unknown layer 'conv3d'", function() return fm.CNN{layers = {{"conv3d", 8}}} end)
T.err("padding must be \"valid\" or \"same\"", function() return fm.CNN{layers = {{"conv2d", 8, 3, padding = "full"}, {"dense", 10}}} end)
T.err("must give 2 to 256 class scores", function() return fm.CNN{layers = {{"conv2d", 8, 3}}} end)
T.err("MLP: unknown option 'hiden'", function() return fm.MLP{hiden = {10}} end)
T.err("option 'dropout' must be a number in [0, 1), got 1.5", function() return fm.MLP{dropout = 1.5} end)

-- a short training run must learn
local mlp = fm.MLP{hidden = {64}, seed = 3}
local epochs_seen = {}
local h = mlp:fit(train, {epochs = 3, batch = 64, seed = 3, verbose = false, validation = 0.1,
  on_epoch = function(e, st) epochs_seen[#epochs_seen + 1] = e; T.ok(st.loss > 0, "on_epoch gets the loss") end})
T.eq(#h, 3, "history: one record per epoch")
T.eq(epochs_seen, {1, 2, 3}, "on_epoch called every epoch")
T.ok(h[3].loss < h[1].loss, "training loss goes down")
T.ok(h.val_accuracy and #h.val_accuracy == 3, "history.val_accuracy per epoch")
T.ok(h[1].seconds > 0, "history: seconds")
local r = mlp:evaluate(test)
T.ok(r.accuracy > 0.6, ("MLP on 3000 images learns: test accuracy %.3f (chance 0.1)"):format(r.accuracy))
T.ok(r.loss and r.loss < 1.5, "evaluate gives the loss")
T.eq(r.n, #test, "evaluate covers the test set")
T.ok(r:report():find("weighted avg", 1, true), "result:report()")
local pred = mlp:predict(test)
T.eq(#pred, #test, "predict: one class per image")
local agree = 0
local labels = test:labels()
for i = 1, #test do if pred[i] == labels[i] then agree = agree + 1 end end
T.near(agree / #test, r.accuracy, 1e-9, "predict agrees with evaluate")
local proba = mlp:predict_proba(test:images(1, 5))
T.eq(proba:shape(), {5, 10}, "predict_proba on a tensor: N x 10")
T.near(proba:sum(2):totable(), {1, 1, 1, 1, 1}, 1e-5, "probabilities sum to 1")
T.eq(mlp:predict(test:image(1)), math.tointeger(pred[1]), "predict on one 28x28 image: its class id, an integer")
T.eq(math.type(mlp:predict(test:image(1):reshape(784))), "integer", "and on one flat image")
T.eq(mlp:predict(test:image(1):reshape(1, 784)):shape(), {1}, "a batch of one image gives a tensor")
local stop = fm.LogReg{seed = 1}:fit(train, {epochs = 5, verbose = false, on_epoch = function(e) return e < 2 end})
T.eq(#stop, 2, "on_epoch returning false stops training")
T.eq(stop.stopped, "on_epoch returned false", "history says why it stopped")

-- the CNN learns too (one epoch on 3000 images)
local c = fm.CNN{seed = 2}
c:fit(train, {epochs = 1, batch = 32, seed = 2, verbose = false})
local rc = c:evaluate(test)
T.ok(rc.accuracy > 0.5, ("CNN, one epoch on 3000 images: %.3f"):format(rc.accuracy))

-- determinism: same seeds, same weights, bit for bit
local function trained(threads)
  local m = fm.MLP{hidden = {32}, seed = 9}
  m:fit(train:subset(1, 1000), {epochs = 2, seed = 9, verbose = false, threads = threads})
  return m:weights(1)
end
T.ok(trained(2) == trained(2), "same seed and threads: identical weights")
local c1, c2 = fm.CNN{seed = 4}, fm.CNN{seed = 4}
for _, m in ipairs{c1, c2} do m:fit(train:subset(1, 256), {epochs = 1, seed = 4, verbose = false}) end
T.ok(c1:weights(4) == c2:weights(4), "CNN: identical weights for the same seed")

-- weights, saliency, activations
local w, b = cnn:weights(1)
T.eq(w:shape(), {3, 3, 1, 32}, "conv weights: kh x kw x cin x cout")
T.eq(b:shape(), {32}, "conv biases")
T.eq(fm.LogReg{}:weights(1):shape(), {784, 10}, "LogReg weights: 784 x 10")
T.err("layer 2 (relu) has no weights", function() return cnn:weights(2) end)
T.err("layer 12 out of range", function() return cnn:weights(12) end)
local img = test:image(1)
local sal = c:gradient_wrt_input(img, 3)
T.eq(sal:shape(), {28, 28}, "saliency has the image's shape")
T.ok(sal:abs():sum() > 0, "saliency is not all zero")
local sal2 = c:gradient_wrt_input(test:images(1, 4), fm.tensor{0, 1, 2, 3})
T.eq(sal2:shape(), {4, 784}, "saliency of several images")
T.near(sal2[1]:sum(), c:gradient_wrt_input(test:image(1), 0):sum(), 1e-4, "batched saliency matches")
T.eq(c:activations(img, 1):shape(), {32, 26, 26}, "feature maps of conv 1: 32 x 26 x 26")
T.eq(c:activations(img, 8):shape(), {128}, "activations of a dense layer")
T.err("class 10.0 is not a class id", function() return c:gradient_wrt_input(img, 10) end)

-- save and load: the loaded model predicts exactly the same
local path = dir .. "/mlp.fmn"
mlp.info.note = "three epochs"
T.eq(mlp:save(path), path, "save returns the path")
local back = fm.load_model(path)
T.eq(back.kind, "MLP", "loaded kind")
T.eq(back.epochs, 3, "loaded epochs trained")
T.eq(back.info.note, "three epochs", "info survives a save")
T.ok(back:predict_proba(test) == mlp:predict_proba(test), "a loaded model predicts exactly the same")
local cpath = dir .. "/cnn.fmn"
c:save(cpath)
T.ok(fm.load_model(cpath):predict_proba(test:images(1, 20)) == c:predict_proba(test:images(1, 20)), "CNN round trip")

local slurp, spit = T.read, T.write
local good = slurp(path)
spit(dir .. "/trunc.fmn", good:sub(1, #good // 2))
T.err("trunc.fmn: truncated or corrupt model file", function() return fm.load_model(dir .. "/trunc.fmn") end)
spit(dir .. "/short.fmn", good:sub(1, 10))
T.err("short.fmn: not an fmnist model (too short to hold a header)", function() return fm.load_model(dir .. "/short.fmn") end)
local flipped = good:sub(1, 2000) .. string.char((good:byte(2001) + 1) % 256) .. good:sub(2002)
spit(dir .. "/flip.fmn", flipped)
T.err("flip.fmn: corrupt model file (checksum mismatch)", function() return fm.load_model(dir .. "/flip.fmn") end)
spit(dir .. "/foreign.fmn", "\137PNG\r\n\26\n" .. string.rep("\0", 100))
T.err("foreign.fmn: not an fmnist model (wrong magic number)", function() return fm.load_model(dir .. "/foreign.fmn") end)
spit(dir .. "/future.fmn", good:sub(1, 8) .. string.pack("<I4", 99) .. good:sub(13))
T.err("future.fmn: written by a newer fmnist (model format 99", function() return fm.load_model(dir .. "/future.fmn") end)
T.err("cannot open", function() return fm.load_model(dir .. "/missing.fmn") end)
spit(dir .. "/empty.fmn", "")
T.err("empty.fmn: not an fmnist model", function() return fm.load_model(dir .. "/empty.fmn") end)
-- a failed save leaves the earlier file as it was
T.err("save: " .. dir .. "/no/such/dir/m.fmn: cannot write", function() mlp:save(dir .. "/no/such/dir/m.fmn") end)
T.eq(slurp(path), good, "the saved file is untouched")

-- divergence: a learning rate of 1e30 makes the loss infinite
local d = fm.MLP{hidden = {16}, seed = 1}
local before = d:weights(1)
local msg = T.err("training diverged at epoch 1, batch", function()
  d:fit(train:subset(1, 512), {epochs = 2, lr = 1e30, optimizer = "sgd", verbose = false}) end)
local after = d:weights(1)
local finite = true
for _, row in ipairs(after:totable()) do for _, v in ipairs(row) do if v ~= v or v == math.huge or v == -math.huge then finite = false end end end
T.ok(finite, "after divergence every weight is finite")
T.ok(d:evaluate(test).accuracy >= 0, "the model still evaluates")
T.ok(before ~= nil, "divergence message: " .. tostring(msg))

-- wrong arguments
T.err("bad argument #1 to 'fit' (fmnist.Dataset expected, got table)", function() return mlp:fit({}) end)
T.err("bad argument #1 to 'predict' (fmnist.Dataset or fmnist.Tensor expected, got string)", function() return mlp:predict("x") end)
T.err("predict: a 3 tensor is not images of 28 x 28", function() return mlp:predict(fm.zeros(3)) end)
T.err("fit: unknown option 'epoch'", function() return mlp:fit(train, {epoch = 1}) end)
T.err("fit: option 'optimizer' must be one of \"adam\", \"sgd\", \"adamw\", not 'rmsprop'", function() return mlp:fit(train, {optimizer = "rmsprop"}) end)
T.err("option 'epochs' must be a number, got string", function() return mlp:fit(train, {epochs = "x"}) end)
T.err("fit: validation fraction must be in (0, 1)", function() return mlp:fit(train, {validation = 2}) end)
T.err("bad argument #1 to 'evaluate' (fmnist.Dataset expected, got no value)", function() return mlp:evaluate() end)

T.done()
