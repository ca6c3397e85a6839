-- summary.lua: load both Fashion-MNIST sets and print what they hold.
--   fmnist-lua notebooks/summary.lua [--report DIR]
local fm = require "fmnist"
local notebook = require "fmnist.notebook"

nb = notebook.new("summary", arg, {
  title = "Fashion-MNIST in numbers",
  about = [[Loads both sets and prints their sizes, pixel ranges and the images of each class.
    It draws nothing.]],
  omit = { "out", "epochs", "quick", "format", "seed" },
})
if not nb then return end

nb:cell("Load both sets", function()
  local t0 = fm.clock()
  train, test = fm.load("train"), fm.load("test")
  print(("loaded both sets in %.2f s"):format(fm.clock() - t0))
  print(train)
  print(test)
end)

nb:cell("Sizes and pixel values", { needs = { "train", "test" } }, function()
  local rows = {}
  for _, s in ipairs { { "train", train }, { "test", test } } do
    local x = s[2]:images()
    rows[#rows + 1] = { s[1], #s[2], "28x28", x:min(), x:max(), x:mean() }
  end
  nb:table({ { "set", "%s" }, { "images", "%d" }, { "shape", "%s" }, { "min", "%.3f" },
    { "max", "%.3f" }, { "mean", "%.3f" } }, rows, { caption = "the two sets" })
end)

nb:cell("Images per class", { needs = { "train", "test" } }, function()
  local rows, ctrain, ctest = {}, train:counts(), test:counts()
  for c = 1, #train.classes do rows[c] = { c - 1, train.classes[c], ctrain[c], ctest[c] } end
  nb:table({ { "id", "%d" }, { "class", "%s" }, { "train", "%d" }, { "test", "%d" } }, rows,
    { caption = "images per class" })
end)

nb:finish()
