-- Model files of version 1, saved by an earlier engine (tests/fixtures/v1, made by make.lua there):
-- each keeps loading and predicting what it predicted then, and training the same way again gives
-- the same weights bit for bit (only on the matrix kernel the fixtures were made with, "avx512":
-- another kernel rounds differently).
local T = require "testlib"
local fm = require "fmnist"

local dir = "tests/fixtures/v1"
local spec = dofile(dir .. "/spec.lua")
local have_data, full_test = pcall(fm.load, "test")

local function max_diff(a, b)
  return (a - b):abs():max()
end

for _, m in ipairs(spec.models) do
  local model = fm.load_model(dir .. "/" .. m.name .. ".fmn")
  local fresh = m.make(fm)
  T.eq(model.params, fresh.params, m.name .. ": the v1 file loads with the parameter count of its spec")
  T.eq(model.epochs, 1, m.name .. ": one epoch trained")
  if have_data then
    local test = full_test:subset(1, spec.test_images)
    local want = fm.load_npy(dir .. "/" .. m.name .. "_probs.npy")
    local got = model:predict_proba(test)
    T.eq(got:shape(), want:shape(), m.name .. ": probabilities for 200 images")
    local d = max_diff(got, want)
    T.ok(d <= 1e-5, string.format("%s: predicts what it predicted when saved (max difference %g)",
      m.name, d))
  else
    T.skip(m.name .. ": predictions", "Fashion-MNIST is not installed")
  end
end

-- Retraining from the same seed: the same weights, layer by layer.
if not have_data then
  T.skip("retraining the fixtures", "Fashion-MNIST is not installed")
elseif fm.versions().gemm ~= "avx512" then
  T.skip("retraining the fixtures", "the fixtures were made on the avx512 kernel, this is " ..
    fm.versions().gemm)
else
  local train = fm.load("train"):subset(1, spec.train_images)
  for _, m in ipairs(spec.models) do
    local saved = fm.load_model(dir .. "/" .. m.name .. ".fmn")
    local model = m.make(fm)
    model:fit(train, spec.fit)
    local same, layers = true, 0
    for i = 1, model.layers do
      if model:layer(i).params > 0 then
        layers = layers + 1
        local w1, b1 = model:weights(i)
        local w2, b2 = saved:weights(i)
        if max_diff(w1, w2) ~= 0 or max_diff(b1, b2) ~= 0 then same = false end
      end
    end
    T.ok(same and layers > 0, m.name .. ": retrained from the same seed, the same weights bit for bit ("
      .. layers .. " layers with parameters)")
  end
end

T.done()
