-- fit's training options: the optimizer's state kept from one fit to the next (and reset), AdamW,
-- warm-up and one-cycle schedules as the history reports them, label smoothing, augmentation
-- (deterministic for a seed, a real change to training, refused when out of range), and batch
-- norm's running statistics restored with the best epoch's weights.
local T = require "testlib"
local fm = require "fmnist"

local ok_data, full = pcall(fm.load, "test")
if not ok_data then
  T.skip("fit options", "Fashion-MNIST is not installed")
  T.done()
  return
end
local train, val = full:subset(1, 600), full:subset(601, 800)

local function same_weights(a, b)
  for i = 1, a.layers do
    if a:layer(i).params > 0 then
      local wa, ba = a:weights(i)
      local wb, bb = b:weights(i)
      if (wa - wb):abs():max() ~= 0 or (ba:shape()[1] > 0 and (ba - bb):abs():max() ~= 0) then
        return false
      end
    end
  end
  return true
end

-- Two fits of one epoch continue the same Adam: the same weights as one fit of two epochs
-- (constant rate, no shuffling, no dropout: nothing else differs between the two ways).
local opts = { epochs = 1, schedule = "constant", shuffle = false, seed = 3, verbose = false, threads = 1 }
local a = fm.LogReg{}
a:fit(train, opts)
a:fit(train, opts)
local b = fm.LogReg{}
b:fit(train, { epochs = 2, schedule = "constant", shuffle = false, seed = 3, verbose = false, threads = 1 })
T.ok(same_weights(a, b), "fit, then fit again: the optimizer's state carries on, as one fit of two epochs")
local c = fm.LogReg{}
c:fit(train, opts)
c:fit(train, { epochs = 1, schedule = "constant", shuffle = false, seed = 3, verbose = false,
               threads = 1, reset = true })
T.ok(not same_weights(c, b), "reset = true starts the optimizer afresh (other weights)")
local d = fm.LogReg{}
d:fit(train, opts)
d:fit(train, { epochs = 1, schedule = "constant", shuffle = false, seed = 3, verbose = false,
               threads = 1, optimizer = "sgd", lr = 0.01 })
T.ok(not same_weights(d, b), "another optimizer starts from its own state")

-- warm-up and one-cycle, as the history's learning rates show them
local h = fm.LogReg{}:fit(train, { epochs = 4, warmup = 2, lr = 0.01, seed = 1, verbose = false })
T.near(h.lr, { 0.01 * 0.01, 0.01 * 0.505, 0.01, 0.01 * 0.5 }, 1e-9,
       "warm-up 2 of 4 epochs: from lr / 100 linearly, then the cosine over the last 2")
h = fm.LogReg{}:fit(train, { epochs = 10, schedule = "onecycle", lr = 0.01, seed = 1, verbose = false })
T.ok(math.abs(h.lr[1] - 0.01 / 25) < 1e-12 and h.lr[4] > h.lr[2] and h.lr[10] < h.lr[5],
     "one-cycle: from lr / 25 up, then down")
T.err("option 'warmup' applies only with a schedule other than \"onecycle\"", function()
  fm.LogReg{}:fit(train, { epochs = 2, schedule = "onecycle", warmup = 1, verbose = false })
end)
T.err("option 'warmup' must be a number in [0, 3)", function()
  fm.LogReg{}:fit(train, { epochs = 3, warmup = 3, verbose = false })
end)
-- a run shorter than a recipe's warms up for the same share of its epochs (ResNet: 2 of 50)
local tiny = fm.Model{kind = "ResNet", seed = 1, layers = {"flatten", {"dense", 10}}}
h = tiny:fit(train, { epochs = 25, seed = 1, verbose = false })
T.near({h.lr[1], h.lr[2]}, {0.1 / 100, 0.1}, 1e-9, "25 of the recipe's 50 epochs: 1 epoch of warm-up")
h = fm.Model{kind = "ResNet", seed = 1, layers = {"flatten", {"dense", 10}}}:fit(train, { epochs = 1, seed = 1, verbose = false })
T.eq(#h, 1, "one epoch of a recipe with 2 epochs of warm-up trains")

-- AdamW: the decoupled decay shrinks the weights more than none
local plain, decayed = fm.MLP{ hidden = { 16 }, seed = 2 }, fm.MLP{ hidden = { 16 }, seed = 2 }
plain:fit(train, { epochs = 2, optimizer = "adamw", weight_decay = 0, seed = 1, verbose = false })
decayed:fit(train, { epochs = 2, optimizer = "adamw", weight_decay = 5, seed = 1, verbose = false })
local wp, wd = plain:weights(1), decayed:weights(1)
T.ok((wd * wd):sum() < 0.9 * (wp * wp):sum(), "adamw with weight decay shrinks the weights")

-- label smoothing: a higher training loss for the same weights' path, still learning
local h0 = fm.LogReg{}:fit(train, { epochs = 4, seed = 1, verbose = false })
local h1 = fm.LogReg{}:fit(train, { epochs = 4, seed = 1, verbose = false, label_smoothing = 0.2 })
T.ok(h1.loss[4] > h0.loss[4] and h1.accuracy[4] > 0.6, ("label smoothing 0.2: loss %.3f (%.3f "
     .. "without), accuracy %.2f"):format(h1.loss[4], h0.loss[4], h1.accuracy[4]))
T.err("option 'label_smoothing' must be a number in [0, 1)", function()
  fm.LogReg{}:fit(train, { epochs = 1, label_smoothing = 1, verbose = false })
end)

-- augmentation: deterministic for a seed, a real change, checked
local function trained(aug, seed, threads)
  local m = fm.CNN{ seed = 4, layers = { { "conv2d", 4, 3 }, "relu", { "maxpool", 2 }, "flatten", { "dense", 10 } } }
  m:fit(train, { epochs = 1, seed = seed, augment = aug, verbose = false, threads = threads })
  return m
end
local aug = { crop = 2, flip = true, erase = 0.5 }
T.ok(same_weights(trained(aug, 1, 2), trained(aug, 1, 2)), "augmented training is the same for a seed")
T.ok(not same_weights(trained(aug, 1, 2), trained(nil, 1, 2)), "and differs from training without it")
T.ok(not same_weights(trained(aug, 1, 2), trained(aug, 2, 2)), "and between seeds")
T.ok(same_weights(trained({ crop = 0 }, 1, 2), trained(false, 1, 2)),
     "augment = {crop = 0} changes nothing, as augment = false")
local runs = {}
for threads = 1, 2 do
  runs[threads] = fm.MLP{ hidden = { 16 }, seed = 2 }:fit(train, { epochs = 6, augment = { flip = true },
                                                                  seed = 1, verbose = false, threads = threads })
end
T.ok(runs[2].accuracy[6] > 0.25 and runs[2].accuracy[6] == runs[1].accuracy[6],
     ("an MLP learns with augmentation, the same images on 1 and 2 threads (batch-sharded): "
      .. "accuracy %.3f and %.3f"):format(runs[1].accuracy[6], runs[2].accuracy[6]))
T.err("fit: augment: unknown option 'shift' (known: crop, flip, erase)", function()
  fm.LogReg{}:fit(train, { epochs = 1, augment = { shift = 2 }, verbose = false })
end)
T.err("option 'crop' must be an integer from 0 to 14, got 20", function()
  fm.LogReg{}:fit(train, { epochs = 1, augment = { crop = 20 }, verbose = false })
end)
T.err("option 'erase' must be a number in [0, 1], got 2", function()
  fm.LogReg{}:fit(train, { epochs = 1, augment = { erase = 2 }, verbose = false })
end)
T.err("fit: option 'augment' must be a table {crop =, flip =, erase =} or false, got number",
      function() fm.LogReg{}:fit(train, { epochs = 1, augment = 3, verbose = false }) end)

-- early stopping with batch norm: the best epoch's running statistics come back with its weights
local bn = fm.Model{ seed = 1, layers = { { "conv2d", 4, 3, bias = false }, "batchnorm", "relu",
                                          "global_avgpool", { "dense", 10 } } }
local snapshots = {}
-- (a rate that grows 30 times each epoch makes the validation loss worse after a while)
local hb = bn:fit(train, { epochs = 6, patience = 1, validation = val, lr = 0.01, seed = 1,
                           schedule = "step", step_epochs = 1, gamma = 30,
                           verbose = false, on_epoch = function(e)
  local _, _, mean = bn:weights(2)
  snapshots[e] = mean
end })
if hb.best_epoch and hb.best_epoch < #hb then
  local _, _, mean = bn:weights(2)
  T.ok((mean - snapshots[hb.best_epoch]):abs():max() == 0,
       "restore_best: batch norm's running mean is the best epoch's (" .. hb.best_epoch .. ")")
else
  T.skip("restore_best with batch norm", "training did not stop early this time")
end
T.done()
