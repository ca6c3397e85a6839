-- explain.lua: what the three trained models look at, side by side.
--
--   fmnist-lua notebooks/explain.lua [outdir] [--models DIR] [--seed N] [--quick]
--                                    [--format png|svg|pdf] [--report DIR] [--cells LIST]
--
-- Loads the models the training notebooks saved (DIR/logreg/logreg.fmn, DIR/mlp/mlp.fmn,
-- DIR/cnn/cnn.fmn; DIR is out by default) and compares what they look at, on the same test
-- images: saliency maps of one image of every class for each model, where each model looks on
-- average, and occlusion maps — overall and per class — of all three. Each model's own figures
-- (LogReg weights, MLP occlusion, CNN filters and feature maps) are in its notebook; this one
-- only draws what needs them together. A model that is not there is left out with the command
-- that makes it. --quick uses fewer test images.
local fm = require "fmnist"
local notebook = require "fmnist.notebook"
local explain = require "fmnist.explain"

nb = notebook.new("explain", arg, {
  title = "What the three models look at",
  about = [[Compares the logistic regression, the MLP and the CNN saved by their notebooks on the
    same test images: saliency maps side by side, where each model looks on average, and how much
    accuracy each loses when a patch of the image is hidden, overall and class by class.]],
  options = {
    { name = "models", kind = "string", arg = "DIR", default = "out",
      help = "where the training notebooks saved the models (default out)" },
  },
  omit = { "epochs" },
})
if not nb then return end
-- In a report of several notebooks, the models are where the training notebooks of that report
-- saved them.
if nb.session and nb.session.models and not nb.o.given.models then
  nb:set_option("models", nb.session.models, "the models of this report")
end

local MODELS = {
  { name = "logreg", title = "LogReg" },
  { name = "mlp", title = "MLP" },
  { name = "cnn", title = "CNN" },
}

nb:cell("The trained models", function()
  models = {}
  local rows = {}
  for _, m in ipairs(MODELS) do
    local path = notebook.model_path(nb.o.models, m.name)
    if notebook.exists(path) then
      m.model = fm.load_model(path)
      m.path = path
      models[#models + 1] = m
      rows[#rows + 1] = { m.title, path, m.model.params, notebook.plural(m.model.epochs, "epoch"),
        tonumber(m.model.info.test_accuracy), m.model.info.quick == "yes" and "yes" or "no" }
    else
      print(("%-7s %s is missing: run  fmnist-lua notebooks/%s.lua%s  first"):format(m.title, path,
        m.name, nb.o.models ~= "out" and (" " .. nb.o.models .. "/" .. m.name) or ""))
    end
  end
  if #models == 0 then
    error("explain.lua: no saved model in " .. nb.o.models .. "/: run the training notebooks "
      .. "(notebooks/logreg.lua, mlp.lua, cnn.lua) first", 0)
  end
  nb:table({ { "model", "%s" }, { "file", "%s" }, { "parameters", "%d" }, { "trained", "%s" },
    { "test accuracy", "%.4f" }, { "quick run", "%s" } }, rows, { caption = "the models" })
end)

nb:cell("Data", function()
  test = fm.load("test")
  print(test)
  -- Occlusion runs every model over many hidden-patch copies of these images: a stratified sample.
  sample = test:split(math.min(1, (nb.o.quick and 200 or 1000) / #test), { seed = nb.o.seed, stratify = true })
  print(("%d test images; %d of them (stratified) for the averages and the occlusion maps"):format(#test, #sample))
end)

nb:cell("Saliency, model by model", { needs = { "models", "test" } }, function()
  nb:say([[One test image of each class and, beside it, each model's saliency map: how much each
pixel would change the score of the true class (SmoothGrad: averaged over noisy copies of the
image). The logistic regression's map is its weights for the class, the same for every image;
the MLP and the CNN look at the image itself.]])
  local idx = explain.per_class(test, 1, nb.o.seed)
  local some = test:subset(idx)
  local x, labels = some:images(), some:labels()
  local samples = nb.o.quick and 4 or 16
  local maps = {}
  for i, m in ipairs(models) do
    maps[i] = explain.saliency(m.model, x, labels, { samples = samples, noise = 0.15, seed = nb.o.seed })
    m.pred = m.model:predict(x):totable()
  end
  local list, captions = {}, {}
  local y = labels:totable()
  for j = 1, #y do
    list[#list + 1] = x[j]:reshape(28, 28)
    captions[#captions + 1] = test.classes[y[j] + 1]
    for i, m in ipairs(models) do
      list[#list + 1] = maps[i][j]:reshape(28, 28)
      local right = m.pred[j] == y[j]
      captions[#captions + 1] = m.title .. (right and "" or ("\n(as " .. test.classes[m.pred[j] + 1] .. ")"))
    end
  end
  nb:figure(fm.plot.images(list, {
    cols = 1 + #models, cell = 140, captions = captions, palette = "magma", range = { 0, 1 },
    cblabel = "pixel value (image); |gradient| / its 99th percentile (saliency)",
    title = ("Saliency of the true class, model by model\n(one test image per class, "
      .. "SmoothGrad over %d copies)"):format(samples),
    file = nb:path("saliency_models.png"),
  }), "saliency maps of the models, one image per class")
end)

nb:cell("Where each model looks on average", { needs = { "models", "sample" } }, function()
  local maps, captions = {}, {}
  for i, m in ipairs(models) do
    maps[i] = explain.mean_saliency(m.model, sample)
    captions[i] = m.title
  end
  nb:figure(fm.plot.images(maps, {
    cols = #maps, cell = 220, captions = captions, palette = "magma", range = { 0, 1 },
    cblabel = "mean |gradient| / its largest",
    title = ("Mean |gradient of the true class's score| over %d test images"):format(#sample),
    file = nb:path("mean_saliency_models.png"),
  }), "mean saliency of the models")
end)

nb:cell("Occlusion, all models on the same images", { needs = { "models", "sample" } }, function()
  local opts = { patch = 4, stride = nb.o.quick and 4 or 2 }
  local maps, captions, rows = {}, {}, {}
  for _, m in ipairs(models) do
    local t0 = fm.clock()
    m.occlusion = explain.occlusion(m.model, sample, opts)
    local r = m.occlusion
    local row, col, worst = explain.peak(r.map)
    maps[#maps + 1] = r.map
    captions[#captions + 1] = ("%s (%.1f%% intact)"):format(m.title, 100 * r.base)
    rows[#rows + 1] = { m.title, r.base, r.map:mean(), worst, ("row %d, column %d"):format(row, col),
      fm.clock() - t0 }
  end
  nb:table({ { "model", "%s" }, { "intact accuracy", "%.4f" }, { "mean drop", "%.2f" },
    { "largest drop", "%.2f" }, { "where", "%s" }, { "seconds", "%.1f", volatile = true } }, rows,
    { caption = "occlusion" })
  print("(drops in percentage points of accuracy, averaged over the patches covering each pixel)")
  local top = 0
  for _, m in ipairs(maps) do top = math.max(top, m:max()) end
  nb:figure(fm.plot.images(maps, {
    cols = #maps, cell = 220, captions = captions, palette = "magma", range = { 0, math.max(top, 1e-6) },
    cblabel = "accuracy drop (percentage points)",
    title = ("Occlusion: accuracy lost when a %dx%d patch is hidden\n(%d test images, the same for "
      .. "each model)"):format(opts.patch, opts.patch, #sample),
    file = nb:path("occlusion_models.png"),
  }), "occlusion maps of the models")
end)

nb:cell("Occlusion per class, model by model", { needs = { "models" } }, function()
  -- A row per class, a column per model, one symmetric colour range (hiding a patch can also
  -- help a class, in blue); the top 1% saturate.
  local list, captions, all = {}, {}, {}
  for c = 1, #test.classes do
    for _, m in ipairs(models) do
      if not m.occlusion then error("the occlusion cell did not run for " .. m.title, 0) end
      list[#list + 1] = m.occlusion.by_class[c]
      all[#all + 1] = m.occlusion.by_class[c]
      captions[#captions + 1] = m.title .. ": " .. test.classes[c]
    end
  end
  local a = explain.abs_quantile(all, 0.99)
  if a == 0 then a = 1 end
  nb:figure(fm.plot.images(list, {
    cols = #models, cell = 170, captions = captions, palette = "diverging", range = { -a, a },
    cblabel = "drop in the class's accuracy (points)",
    title = "Occlusion per class\n(the accuracy of each class lost when a patch is hidden;\n"
      .. "a row per class, a column per model; the top 1% saturate)",
    file = nb:path("occlusion_per_class_models.png"),
  }), "occlusion per class of the models")
  fm.plot.close()
end)

nb:finish()
