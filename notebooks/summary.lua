-- summary.lua: load both Fashion-MNIST sets and print what they hold.
--   fmnist-lua notebooks/summary.lua
local fm = require "fmnist"

local t0 = os.clock()
local train, test = fm.load("train"), fm.load("test")
print(("loaded both sets in %.2f s (CPU)"):format(os.clock() - t0))
print(train)
print(test)

local function range(ds)
  local x = ds:images()
  return x:min(), x:max(), x:mean()
end
print()
print(("%-12s %8s %10s %8s %8s %8s"):format("set", "images", "shape", "min", "max", "mean"))
for _, s in ipairs{{"train", train}, {"test", test}} do
  local lo, hi, mean = range(s[2])
  print(("%-12s %8d %10s %8.3f %8.3f %8.3f"):format(s[1], #s[2], "28x28", lo, hi, mean))
end

print()
print(("%-3s %-12s %8s %8s"):format("id", "class", "train", "test"))
local ctrain, ctest = train:counts(), test:counts()
for c = 1, 10 do
  print(("%-3d %-12s %8d %8d"):format(c - 1, train.classes[c], ctrain[c], ctest[c]))
end
