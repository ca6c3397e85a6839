-- recipes.lua: the training recipes behind the accuracy table of the README, each trained on all
-- 60,000 training images and scored on the 10,000 test images.
--
--   fmnist-lua notebooks/recipes.lua [outdir] [--cells LIST] [--epochs N] [--seed N] [--quick]
--   fmnist-lua notebooks/recipes.lua --list         the recipes, one cell each
--
-- Cell 2: the reference CNN with batch norm and augmentation (about 4 minutes on two cores);
-- cell 3: fm.ResNet{} with its defaults (about 25 minutes); cell 4: fm.MobileNet{} with its
-- defaults (about 20 minutes); cell 5: the ResNet's long recipe, twice the epochs (about 46
-- minutes). All of them run by default; --cells 1,2 runs the CNN alone (cell 1 loads the data).
-- The last cell prints the table of accuracy and training time, and each model is saved as
-- outdir/NAME.fmn (outdir: out/recipes/). --quick: 2,000 training images, one epoch each.
local fm = require "fmnist"
local notebook = require "fmnist.notebook"

nb = notebook.new("recipes", arg, {
  title = "Training recipes",
  about = [[Trains each recipe of the accuracy table on all 60,000 training images and scores it on
    the 10,000 test images: the reference CNN with batch norm and augmentation, fm.ResNet{} and
    fm.MobileNet{} with their defaults, and the ResNet's long recipe.]],
})
if not nb then return end
local o = nb.o

-- The reference CNN's layers, with "same" padding and batch norm after each convolution and the
-- hidden dense layer (whose biases batch norm makes redundant).
function cnn_bn_layers()
  return {
    { "conv2d", 32, 3, padding = "same", bias = false }, "batchnorm", "relu", { "maxpool", 2 },
    { "conv2d", 64, 3, padding = "same", bias = false }, "batchnorm", "relu", { "maxpool", 2 },
    "flatten", { "dense", 128, bias = false }, "batchnorm", "relu", { "dropout", 0.5 },
    { "dense", 10 },
  }
end

RECIPES = {
  { name = "cnn_bn", title = "CNN + batch norm + augmentation",
    make = function() return fm.CNN { seed = o.seed, layers = cnn_bn_layers() } end,
    fit = { epochs = 50, batch = 64, optimizer = "adamw", lr = 3e-3, weight_decay = 0.05,
            schedule = "onecycle", augment = { crop = 2, flip = true } } },
  { name = "resnet", title = "fm.ResNet{} (its defaults)",
    make = function() return fm.ResNet { seed = o.seed } end, fit = {} },
  { name = "mobilenet", title = "fm.MobileNet{} (its defaults)",
    make = function() return fm.MobileNet { seed = o.seed } end, fit = {} },
  { name = "resnet_long", title = "fm.ResNet{}, long recipe",
    make = function() return fm.ResNet { seed = o.seed } end, fit = { epochs = 100 } },
}
results = {}

nb:cell("Data", function()
  train, test = fm.load("train"), fm.load("test")
  print(train)
  print(test)
  if o.quick then
    train = train:split(notebook.QUICK.train / #train, { seed = o.seed, stratify = true })
    test = test:split(notebook.QUICK.test / #test, { seed = o.seed, stratify = true })
  end
  print(("Data: all %d training images are trained on (no validation set), %d test images%s")
    :format(#train, #test, o.quick and "  [quick run]" or ""))
end)

local function recipe_cell(r)
  nb:cell(r.title, { needs = { "train", "test" } }, function()
    local model = r.make()
    local opts = { seed = o.seed, verbose = 1 }
    for k, v in pairs(r.fit) do opts[k] = v end
    if o.epochs then opts.epochs = o.epochs end
    local history, seconds = nb:train(model, train, nil, opts)
    local result = model:evaluate(test)
    print(("%s: test accuracy %.4f, loss %.4f, %s in %.1f s (%.1f min)"):format(r.title,
      result.accuracy, result.loss, notebook.plural(#history, "epoch"), seconds, seconds / 60))
    notebook.make_dir(o.outdir)
    model.info.recipe = r.name
    model.info.train_seconds = ("%.6g"):format(seconds)
    model.info.test_accuracy = ("%.6g"):format(result.accuracy)
    model.info.seed = tostring(o.seed)
    model.info.quick = o.quick and "yes" or "no"
    local path = o.outdir .. "/" .. r.name .. ".fmn"
    model:save(path)
    print("Model saved: " .. path)
    results[#results + 1] = { r.title .. (history.interrupted and " (interrupted)" or ""),
      result.accuracy, #history, seconds / 60, model.params }
  end)
end
for _, r in ipairs(RECIPES) do recipe_cell(r) end

nb:cell("The table", function()
  if #results == 0 then
    print("No recipe was trained (--cells chose none)")
    return
  end
  nb:table({ { "recipe", "%s" }, { "test accuracy", "%.4f" }, { "epochs", "%d" },
    { "training min", "%.1f", volatile = true }, { "parameters", "%d" } }, results,
    { caption = "the recipes on the test set" })
  print(("%s threads; minutes of training only (loading, scoring and saving not counted)")
    :format(fm.threads()))
end)

nb:finish()
