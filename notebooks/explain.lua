-- explain.lua: what the three trained models look at, side by side.
--
--   fmnist-lua notebooks/explain.lua [outdir] [--models DIR] [--seed N] [--quick]
--
-- Loads the models the training notebooks saved (DIR/logreg/logreg.fmn, DIR/mlp/mlp.fmn,
-- DIR/cnn/cnn.fmn; DIR is out by default) and draws their explanations into outdir (default
-- out/explain/): the weight map of every class and the pixel importance of the logistic
-- regression; occlusion importance of the MLP; saliency maps, first-layer filters and feature maps
-- of the CNN; and the occlusion maps of all three on the same test images. A model that is not
-- there is skipped with the command that makes it. --quick uses fewer test images.
local fm = require "fmnist"
local nb = require "fmnist.notebook"
local explain = require "fmnist.explain"

local o = nb.options("explain", arg, {
  { name = "models", kind = "string", arg = "DIR", default = "out",
    help = "where the training notebooks saved the models (default out)" },
}, { "epochs" })
if not o then return end
local wall0 = nb.clock()

print("Explaining the trained models")
local MODELS = {
  { name = "logreg", title = "LogReg" },
  { name = "mlp", title = "MLP" },
  { name = "cnn", title = "CNN" },
}
local found = {}
for _, m in ipairs(MODELS) do
  local path = nb.model_path(o.models, m.name)
  if nb.exists(path) then
    m.model = fm.load_model(path)
    m.path = path
    found[#found + 1] = m
    local acc = tonumber(m.model.info.test_accuracy)
    print(("  %-7s %s: %d parameters, %d epochs%s%s"):format(m.title, path, m.model.params,
      m.model.epochs, acc and (", test accuracy %.4f"):format(acc) or "",
      m.model.info.quick == "yes" and " (a --quick run)" or ""))
  else
    print(("  %-7s %s is missing: run  fmnist-lua notebooks/%s.lua%s  first"):format(m.title, path,
      m.name, o.models ~= "out" and (" " .. o.models .. "/" .. m.name) or ""))
  end
end
if #found == 0 then
  error("explain.lua: no saved model in " .. o.models .. "/: run the training notebooks "
    .. "(notebooks/logreg.lua, mlp.lua, cnn.lua) first", 0)
end

local train, test = fm.load("train"), fm.load("test")
-- Occlusion runs every model over many hidden-patch copies of these images: a stratified sample.
local sample = test:split(math.min(1, (o.quick and 200 or 1000) / #test),
  { seed = o.seed, stratify = true })
local occlusion_opts = { patch = 4, stride = o.quick and 4 or 2 }
local figs = nb.figures(o.outdir)
local by_name = {}
for _, m in ipairs(found) do by_name[m.name] = m end

if by_name.logreg then
  figs:section("Logistic regression: its weights")
  print("Red pixels are evidence for a class when bright, blue ones against it.")
  figs.prefix = "logreg_"
  explain.draw_logreg(by_name.logreg.model, test.classes, "LogReg", figs, train)
end

if by_name.mlp then
  figs:section("MLP: occlusion")
  figs.prefix = "mlp_"
  local t0 = nb.clock()
  local r = explain.occlusion(by_name.mlp.model, sample, occlusion_opts)
  by_name.mlp.occlusion = r
  local row, col, worst = explain.peak(r.map)
  print(("A %dx%d black patch at %d positions in %d test images (%.1f s). Intact accuracy %.4f;")
    :format(r.patch, r.patch, r.positions, r.n, nb.clock() - t0, r.base))
  print(("hiding the pixels around row %d, column %d costs the most, %.1f points of accuracy.")
    :format(row, col, worst))
  explain.draw_occlusion(r, test.classes, "MLP", figs)
end

if by_name.cnn then
  figs:section("CNN: saliency, filters, feature maps")
  figs.prefix = "cnn_"
  local cnn = by_name.cnn.model
  explain.draw_saliency(cnn, test, "CNN", figs, { per_class = 3, seed = o.seed,
    samples = o.quick and 4 or 16 })
  explain.draw_filters(cnn, "CNN", figs)
  explain.draw_feature_maps(cnn, test, "CNN", figs, { index = 1 })
end

-- The same occlusion test for every model: where each one needs to see the garment.
figs:section("Occlusion, all models on the same images")
figs.prefix = ""
local maps, captions, rows = {}, {}, {}
for _, m in ipairs(found) do
  local r = m.occlusion or explain.occlusion(m.model, sample, occlusion_opts)
  local row, col, worst = explain.peak(r.map)
  maps[#maps + 1] = r.map
  captions[#captions + 1] = ("%s (%.1f%% intact)"):format(m.title, 100 * r.base)
  rows[#rows + 1] = { m.title, r.base, r.map:mean(), worst, ("row %d, column %d"):format(row, col) }
end
nb.table({ { "model", "%s" }, { "intact accuracy", "%.4f" }, { "mean drop", "%.2f" },
  { "largest drop", "%.2f" }, { "where", "%s" } }, rows)
print("(drops in percentage points of accuracy, averaged over the patches covering each pixel)")
local top = 0
for _, m in ipairs(maps) do top = math.max(top, m:max()) end
figs:add(fm.plot.images(maps, {
  cols = #maps, cell = 220, captions = captions, palette = "magma", range = { 0, math.max(top, 1e-6) },
  cblabel = "accuracy drop (percentage points)",
  title = ("Occlusion: accuracy lost when a %dx%d patch is hidden\n(%d test images, the same for "
    .. "each model)"):format(occlusion_opts.patch, occlusion_opts.patch, #sample),
  file = figs:path("occlusion_models.png"),
}), "occlusion maps of the models")

fm.plot.close()
print()
print(("%d figures in %s; %.1f s"):format(#figs.list, o.outdir, nb.clock() - wall0))
