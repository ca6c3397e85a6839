-- compare.lua: logistic regression, MLP and CNN (and the ResNet when resnet.lua has saved one) side
-- by side on the Fashion-MNIST test set.
--
--   fmnist-lua notebooks/compare.lua [outdir] [--models DIR] [--retrain] [--epochs N] [--seed N]
--                                    [--quick] [--format png|svg|pdf] [--report DIR] [--cells LIST]
--
-- Loads the models the training notebooks saved (DIR/logreg/logreg.fmn, DIR/mlp/mlp.fmn,
-- DIR/cnn/cnn.fmn; DIR is out by default), or trains the ones that are missing (all of them with
-- --retrain) the way those notebooks do; DIR/resnet/resnet.fmn joins them when it exists (it is
-- never trained here: notebooks/resnet.lua takes about 20 minutes). Prints one table — test accuracy, macro F1, training
-- seconds, prediction speed, parameters — and the per-class accuracy of each model, then draws
-- the per-class accuracy of the models side by side and the five pairs of classes the models
-- confuse most, with test images of each. Figures go to outdir (default out/compare/).
local fm = require "fmnist"
local notebook = require "fmnist.notebook"

nb = notebook.new("compare", arg, {
  title = "The models compared",
  about = [[Scores the logistic regression, the MLP and the CNN (and the ResNet when one was saved)
    on the same 10,000 test images:
    accuracy, macro F1, training time, prediction speed and size, the accuracy of each class, and
    the pairs of classes the models confuse most, with examples.]],
  options = {
    { name = "models", kind = "string", arg = "DIR", default = "out",
      help = "where the training notebooks saved the models (default out)" },
    { name = "retrain", kind = "flag", default = false,
      help = "train all three here even when saved models exist" },
  },
})
if not nb then return end
if nb.session and nb.session.models and not nb.o.given.models then
  nb:set_option("models", nb.session.models, "the models of this report")
end
local o = nb.o

local MODELS = {
  { name = "logreg", title = "LogReg", make = function() return fm.LogReg { seed = o.seed } end },
  { name = "mlp", title = "MLP",
    make = function() return fm.MLP { hidden = { 256, 128 }, dropout = 0.2, seed = o.seed } end },
  { name = "cnn", title = "CNN", make = function() return fm.CNN { seed = o.seed } end },
  { name = "resnet", title = "ResNet-20", optional = true },
}

nb:cell("Data", function()
  fit, val, test = nb:data()
  classes = test.classes
end)

nb:cell("Load or train the models", { needs = { "fit", "val" } }, function()
  local present = {}
  for _, m in ipairs(MODELS) do
    local path = notebook.model_path(o.models, m.name)
    if m.optional and not notebook.exists(path) then
      print(("%-7s not included (no %s)"):format(m.title, path))
    elseif (m.optional or not o.retrain) and notebook.exists(path) then
      m.model = fm.load_model(path)
      m.seconds = tonumber(m.model.info.train_seconds)
      m.source = "loaded from " .. path .. (m.model.info.quick == "yes" and " (a --quick run)" or "")
      print(("%-7s %s"):format(m.title, m.source))
    else
      print(("%-7s training%s (progress on stderr)"):format(m.title,
        o.retrain and "" or (" (no " .. path .. ")")))
      io.stdout:flush()
      m.model = m.make()
      local history = m.model:fit(fit, { epochs = o.epochs, seed = o.seed, validation = val })
      m.seconds = 0
      for _, s in ipairs(history.seconds) do m.seconds = m.seconds + s end
      m.source = ("trained here, %s"):format(notebook.plural(#history, "epoch"))
    end
    if m.model then present[#present + 1] = m end
  end
  MODELS = present
  models = MODELS
end)

nb:cell("Scores on the test set", { needs = { "models", "test" } }, function()
  for _, m in ipairs(MODELS) do
    m.result = m.model:evaluate(test)
    m.speed = notebook.images_per_second(m.model, test, o.quick and 0.2 or 1)
    m.pred = notebook.predictions(m.model, test)
  end
  local rows = {}
  for i, m in ipairs(MODELS) do
    rows[i] = { m.title, m.result.accuracy, m.result.macro.f1, m.seconds, m.speed, m.model.params,
      m.model.epochs }
  end
  print(("%d test images; prediction speed measured on the wall clock over the whole set"):format(#test))
  print()
  nb:table({ { "model", "%s" }, { "test accuracy", "%.4f" }, { "macro F1", "%.4f" },
    { "training s", "%.1f", volatile = true }, { "images/s", "%.0f", volatile = true },
    { "parameters", "%d" }, { "epochs", "%d" } }, rows, { caption = "the models on the test set" })

  -- Per-class accuracy: the share of each class's test images a model gets right (its recall).
  print()
  print("Accuracy per class")
  print()
  local per_class_rows = {}
  for c = 1, #classes do
    local row = { c - 1, classes[c] }
    for _, m in ipairs(MODELS) do row[#row + 1] = m.result.recall[c] end
    per_class_rows[c] = row
  end
  local columns = { { "id", "%d" }, { "class", "%s" } }
  for _, m in ipairs(MODELS) do columns[#columns + 1] = { m.title, "%.4f" } end
  nb:table(columns, per_class_rows, { caption = "accuracy per class" })

  local series = {}
  for i, m in ipairs(MODELS) do
    series[i] = { name = ("%s (%.1f%%)"):format(m.title, 100 * m.result.accuracy),
                  values = m.result.recall }
  end
  nb:figure(fm.plot.bar(series, {
    labels = classes,
    title = ("Accuracy per class on %d test images"):format(#test),
    xlabel = "class", ylabel = "share of the class's images classified right",
    file = nb:path("per_class_accuracy.png"),
  }), "per-class accuracy of the models")
end)

nb:cell("The pairs of classes confused most", { needs = { "models", "test" } }, function()
  -- For each pair {a, b}: the test images of a taken for b plus those of b taken for a, per model.
  local pairs_list = {}
  for a = 1, #classes do
    for b = a + 1, #classes do
      local pair = { a = a, b = b, errors = {}, total = 0 }
      for i, m in ipairs(MODELS) do
        local cm = m.result.confusion
        pair.errors[i] = cm:get(a, b) + cm:get(b, a)
        pair.total = pair.total + pair.errors[i]
      end
      pairs_list[#pairs_list + 1] = pair
    end
  end
  table.sort(pairs_list, function(p, q)
    if p.total ~= q.total then return p.total > q.total end
    return p.a * 100 + p.b < q.a * 100 + q.b
  end)
  local top = {}
  for k = 1, math.min(5, #pairs_list) do top[k] = pairs_list[k] end
  local pair_rows = {}
  for k, p in ipairs(top) do
    local row = { k, classes[p.a] .. " / " .. classes[p.b] }
    for i = 1, #MODELS do row[#row + 1] = math.tointeger(p.errors[i]) end
    row[#row + 1] = math.tointeger(p.total)
    pair_rows[k] = row
  end
  local columns = { { "rank", "%d" }, { "pair", "%s" } }
  for _, m in ipairs(MODELS) do columns[#columns + 1] = { m.title, "%d" } end
  columns[#columns + 1] = { "all", "%d" }
  nb:table(columns, pair_rows, { caption = "the most confused pairs" })
  print("(test images of either class taken for the other, by each model)")

  -- Examples: images of each pair the best model gets wrong, three each way when there are that
  -- many; the other models' mistakes fill in when it makes too few.
  local order = {}
  for i = 1, #MODELS do order[i] = i end
  table.sort(order, function(i, j) return MODELS[i].result.accuracy > MODELS[j].result.accuracy end)
  local PER_WAY = 3
  local images, captions = {}, {}
  local blank = fm.full(28, 28, 0 / 0) -- NaN: drawn as white paper
  for _, p in ipairs(top) do
    for _, way in ipairs { { p.a, p.b }, { p.b, p.a } } do
      local truth, taken = way[1] - 1, way[2] - 1
      local picked, seen = 0, {}
      for _, mi in ipairs(order) do
        local m = MODELS[mi]
        for i, y in ipairs(m.pred.label) do
          if picked == PER_WAY then break end
          if y == truth and m.pred.pred[i] == taken and not seen[i] then
            seen[i] = true
            picked = picked + 1
            images[#images + 1] = test:image(i)
            captions[#captions + 1] = ("true: %s\n%s: %s %.0f%%"):format(classes[truth + 1], m.title,
              classes[taken + 1], 100 * m.pred.confidence[i])
          end
        end
      end
      -- keep the grid's rows aligned: one pair a row
      for _ = picked + 1, PER_WAY do
        images[#images + 1] = blank
        captions[#captions + 1] = ""
      end
    end
  end
  nb:figure(fm.plot.images(images, {
    cols = 2 * PER_WAY, cell = 140, captions = captions, range = { 0, 1 },
    title = ("The five most confused pairs, one a row: test images taken for the other class\n"
      .. "(by the %s where it errs; caption: true class, model: predicted class, confidence)")
      :format(MODELS[order[1]].title),
    file = nb:path("confused_pairs.png"),
  }), "examples of the five most confused pairs")
  fm.plot.close()
end)

nb:finish()
