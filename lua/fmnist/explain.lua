-- fmnist.explain: what a trained model looks at — the maps behind the explanation figures of the
-- model notebooks and notebooks/explain.lua.
--
--   explain.class_weights(model)            LogReg: each class's 784 weights as a 28x28 map
--   explain.pixel_importance(model)         LogReg: |weight| summed over the classes, 28x28
--   explain.saliency(model, x, classes, o) |d score / d pixel| for each image (N x 784), each
--                                           map scaled to its 99th percentile (SmoothGrad)
--   explain.filters(model [, layer])        the kernels of a convolution layer (first by default)
--   explain.feature_maps(model, image, l)   a layer's output for one image, channel by channel
--   explain.occlusion(model, ds, opts)      accuracy lost when a patch of every image is hidden
--
-- and the figures drawn from them, each written through figs (fmnist.notebook's list of figures):
--   explain.draw_logreg(model, classes, title, figs [, train])
--   explain.draw_saliency(model, ds, title, figs, opts)
--   explain.draw_filters(model, title, figs)
--   explain.draw_feature_maps(model, ds, title, figs, opts)
--   explain.draw_occlusion(result, classes, title, figs)
local fm = require "fmnist"

local M = {}

local SIDE = 28

local function fail(fname, fmt, ...)
  error("explain." .. fname .. ": " .. fmt:format(...), 0)
end

-- The indices of the model's layers of one type ("conv2d", "relu", ...).
local function layers_of(model, kind)
  local found = {}
  for i = 1, model.layers do
    if model:layer(i).type == kind then found[#found + 1] = i end
  end
  return found
end

-- ---- logistic regression ----

-- The first dense layer's 784 x 10 weights, one 28x28 map per class.
function M.class_weights(model)
  local dense = layers_of(model, "dense")
  if #dense == 0 then fail("class_weights", "the %s model has no dense layer", model.kind) end
  local w = model:weights(dense[1])
  local shape = w:shape()
  if shape[1] ~= SIDE * SIDE or shape[2] ~= #fm.classes then
    fail("class_weights", "the first dense layer of the %s model is %dx%d, not pixels x classes "
      .. "(%dx%d): weight maps are for a linear model such as LogReg", model.kind, shape[1],
      shape[2], SIDE * SIDE, #fm.classes)
  end
  local by_class = w:transpose()
  local maps = {}
  for c = 1, shape[2] do maps[c] = by_class[c]:reshape(SIDE, SIDE) end
  return maps
end

-- How much each pixel weighs in the decision, whichever the class: sum over classes of |w|.
function M.pixel_importance(model)
  local total = nil
  for _, map in ipairs(M.class_weights(model)) do
    total = total and total + map:abs() or map:abs()
  end
  return total
end

-- The largest |value| of a list of tensors.
local function largest(maps)
  local a = 0
  for _, m in ipairs(maps) do a = math.max(a, m:abs():max()) end
  return a
end

-- The q-quantile (0..1) of |value| over a list of tensors: a colour range that a handful of extreme
-- values does not wash out (those saturate at the ends of the scale).
local function abs_quantile(maps, q)
  local all = {}
  for _, m in ipairs(maps) do
    for _, row in ipairs(m:abs():totable()) do
      for _, v in ipairs(type(row) == "table" and row or { row }) do all[#all + 1] = v end
    end
  end
  if #all == 0 then return 0 end
  table.sort(all)
  return all[math.max(1, math.min(#all, math.floor(q * #all + 0.5)))]
end
M.abs_quantile = abs_quantile

-- explain.draw_logreg(model, classes, title, figs [, train]): the weight map of every class and
-- the pixel importance; with the training set also the importance weighted by each pixel's
-- standard deviation.
function M.draw_logreg(model, classes, title, figs, train)
  local maps = M.class_weights(model)
  -- One colour range for all ten, symmetric so that white is exactly zero and the classes compare.
  -- The largest weights sit on the border pixels that are almost always black (an adaptive
  -- optimizer moves rarely used weights as far as the others); the top 2% saturate, so that the
  -- garment's shape is not washed out by them.
  local a = abs_quantile(maps, 0.98)
  if a == 0 then a = 1 end
  figs:add(fm.plot.images(maps, {
    cols = 5, cell = 150, captions = classes, palette = "diverging", range = { -a, a },
    cblabel = "weight (red: evidence for the class, blue: against)",
    title = ("%s: weights of each class over the 28x28 pixels\n(colours saturate beyond "
      .. "+-%.2g, the largest 2%% of the weights)"):format(title, a),
    file = figs:path("weights_per_class.png"),
  }), "weight map of every class")
  figs:add(fm.plot.heatmap(M.pixel_importance(model), {
    palette = "magma", values = false, cblabel = "sum over the 10 classes of |weight|",
    title = title .. ": pixel importance, |weight| summed over the classes",
    xlabel = "column", ylabel = "row",
    file = figs:path("pixel_importance.png"),
  }), "pixel importance")
  if train then
    -- A weight matters as much as its pixel varies: a pixel that is always black (the corners)
    -- never moves a score, whatever its weight.
    figs:add(fm.plot.heatmap(M.pixel_importance(model) * train:std_image(), {
      palette = "magma", values = false,
      cblabel = "sum over the classes of |weight| x pixel std",
      title = title .. ": pixel importance weighted by how much each pixel varies",
      xlabel = "column", ylabel = "row",
      file = figs:path("pixel_importance_std.png"),
    }), "pixel importance x pixel std")
  end
end

-- ---- saliency ----

-- explain.saliency(model, x, classes [, opts]) -> N x 784: |gradient of the class score with
-- respect to each pixel| of each image of x (N x 784), each map divided by its 99th percentile and
-- clipped at 1, so that images compare and a few hot pixels do not leave the rest black.
-- classes: a number, or a tensor of N class ids.
-- opts.samples > 1 averages the gradients of that many copies with Gaussian noise of standard
-- deviation opts.noise (SmoothGrad: the raw gradient of a ReLU net is speckled, the average shows
-- the shapes); opts.seed seeds the noise through fm.seed.
function M.saliency(model, x, classes, opts)
  opts = opts or {}
  local samples, noise = opts.samples or 1, opts.noise or 0.15
  local n = x:numel() // (SIDE * SIDE)
  x = x:reshape(n, SIDE * SIDE)
  if opts.seed then fm.seed(opts.seed) end
  local g
  for _ = 1, samples do
    local input = samples > 1 and x + fm.randn(n, SIDE * SIDE) * noise or x
    local d = model:gradient_wrt_input(input, classes):abs()
    g = g and g + d or d
  end
  local scale = {}
  for i = 1, n do
    local row = g[i]:totable()
    table.sort(row)
    local top = row[math.floor(0.99 * #row)]
    scale[i] = top > 0 and 1 / top or 0
  end
  -- each image's row times its own factor: the factors broadcast as a row over the transpose
  g = (g:transpose() * fm.tensor(scale)):transpose()
  return g:map(function(v) return v < 1 and v or 1 end)
end

-- k images of each class of ds, picked with the seed: their indices in ds, class by class.
local function per_class(ds, k, seed)
  local by_class = {}
  for c = 1, #ds.classes do by_class[c] = {} end
  for i, y in ipairs(ds:labels():totable()) do table.insert(by_class[y + 1], i) end
  local picked = {}
  math.randomseed(seed)
  for c = 1, #ds.classes do
    local list = by_class[c]
    for j = 1, math.min(k, #list) do
      local r = math.random(j, #list)
      list[j], list[r] = list[r], list[j]
      picked[#picked + 1] = list[j]
    end
  end
  return picked
end

-- explain.draw_saliency(model, ds, title, figs, {per_class = 3, seed = 1}): each image beside its
-- saliency map for the true class, a row per class.
function M.draw_saliency(model, ds, title, figs, opts)
  opts = opts or {}
  local k = opts.per_class or 3
  local some = ds:subset(per_class(ds, k, opts.seed or 1))
  local x, labels = some:images(), some:labels()
  local y, pred = labels:totable(), model:predict(x):totable()
  local samples = opts.samples or 16
  local sal = M.saliency(model, x, labels, { samples = samples, noise = 0.15, seed = opts.seed or 1 })
  local list, captions = {}, {}
  for j = 1, #y do
    local name = ds.classes[y[j] + 1]
    list[#list + 1] = x[j]:reshape(SIDE, SIDE)
    captions[#captions + 1] = pred[j] == y[j] and name or (name .. "\n(as " .. ds.classes[pred[j] + 1] .. ")")
    list[#list + 1] = sal[j]:reshape(SIDE, SIDE)
    captions[#captions + 1] = "saliency"
  end
  return figs:add(fm.plot.images(list, {
    cols = 2 * k, cell = 110, captions = captions, palette = "magma", range = { 0, 1 },
    cblabel = "pixel value (image); |gradient| / its 99th percentile (saliency)",
    title = title .. ": saliency maps, |gradient of the true class's score| at each pixel\n"
      .. (samples > 1 and ("(averaged over %d noisy copies of each image: SmoothGrad)"):format(samples)
        or "(one gradient per image)"),
    file = figs:path("saliency.png"),
  }), "saliency maps (" .. k .. " images per class)")
end

-- ---- convolution filters and feature maps ----

-- Each value repeated in a block of f x f, so that a 3x3 kernel is drawn as a clear 3x3 of squares.
local function enlarge(rows, f)
  local h, w = #rows, #rows[1]
  local out = {}
  for i = 1, h * f do
    local src = rows[(i - 1) // f + 1]
    local line = {}
    for j = 1, w * f do line[j] = src[(j - 1) // f + 1] end
    out[i] = line
  end
  return fm.tensor(out)
end

-- explain.filters(model [, layer]) -> list of kh x kw tensors, one per output channel (summed
-- over the input channels, which the first layer of a grayscale net has only one of).
function M.filters(model, layer)
  layer = layer or layers_of(model, "conv2d")[1]
  if not layer then fail("filters", "the %s model has no convolution layer", model.kind) end
  local w = model:weights(layer)
  local s = w:shape() -- kh x kw x cin x cout
  local list = {}
  for o = 1, s[4] do
    local rows = {}
    for i = 1, s[1] do
      rows[i] = {}
      for j = 1, s[2] do
        local v = 0
        for c = 1, s[3] do v = v + w:get(i, j, c, o) end
        rows[i][j] = v
      end
    end
    list[o] = rows
  end
  return list, layer
end

function M.draw_filters(model, title, figs)
  local kernels, layer = M.filters(model)
  local k = #kernels[1]
  local f = math.max(1, 24 // k)
  local list, captions = {}, {}
  local a = 0
  for o, rows in ipairs(kernels) do
    list[o] = enlarge(rows, f)
    captions[o] = tostring(o)
    a = math.max(a, list[o]:abs():max())
  end
  if a == 0 then a = 1 end
  return figs:add(fm.plot.images(list, {
    cols = 8, cell = 70, captions = captions, palette = "diverging", range = { -a, a },
    cblabel = "weight",
    title = ("%s: the %d filters of the first convolution (layer %d, %dx%d)"):format(title,
      #kernels, layer, k, #kernels[1][1]),
    file = figs:path("filters.png"),
  }), "first-layer filters")
end

-- explain.feature_maps(model, image, layer) -> list of h x w maps, one per channel.
function M.feature_maps(model, image, layer)
  local a = model:activations(image, layer)
  if a:dim() ~= 3 then
    fail("feature_maps", "layer %d (%s) gives no maps: its output is a vector", layer,
      model:layer(layer).type)
  end
  local maps = {}
  for c = 1, a:shape()[1] do maps[c] = a[c] end
  return maps
end

-- The input at the maps' size, so that it can lead their grid: cut around its centre when the
-- maps are only a few pixels smaller (a valid 3x3 convolution loses one on each side), else
-- shrunk by averaging blocks of pixels (after pooling).
local function input_like(image, h, w)
  local rows = image:totable()
  local H, W = #rows, #rows[1]
  local out = {}
  if H - h <= 4 and W - w <= 4 then
    local top, left = (H - h) // 2, (W - w) // 2
    for i = 1, h do
      out[i] = {}
      for j = 1, w do out[i][j] = rows[top + i][left + j] end
    end
    return fm.tensor(out), "input"
  end
  for i = 1, h do
    out[i] = {}
    local r0, r1 = (i - 1) * H // h + 1, math.max((i - 1) * H // h + 1, i * H // h)
    for j = 1, w do
      local c0, c1 = (j - 1) * W // w + 1, math.max((j - 1) * W // w + 1, j * W // w)
      local sum = 0
      for r = r0, r1 do
        for c = c0, c1 do sum = sum + rows[r][c] end
      end
      out[i][j] = sum / ((r1 - r0 + 1) * (c1 - c0 + 1))
    end
  end
  return fm.tensor(out), "input"
end

-- explain.draw_feature_maps(model, ds, title, figs, {index = 1}): what the convolution layers
-- (after their ReLU) make of one image, each map scaled to its own largest value.
function M.draw_feature_maps(model, ds, title, figs, opts)
  opts = opts or {}
  local index = opts.index or 1
  local image = ds:image(index)
  local class = ds.classes[ds:label(index) + 1]
  local convs = layers_of(model, "conv2d")
  for n, conv in ipairs(convs) do
    -- the ReLU right after the convolution, when there is one: what the next layer sees
    local layer = conv
    if conv < model.layers and model:layer(conv + 1).type == "relu" then layer = conv + 1 end
    local maps = M.feature_maps(model, image, layer)
    local s = maps[1]:shape()
    local first, caption = input_like(image, s[1], s[2])
    local list, captions = { first }, { caption }
    local dead = 0
    for c, m in ipairs(maps) do
      local top = m:max()
      if top > 0 then m = m / top else dead = dead + 1 end
      list[#list + 1] = m
      captions[#captions + 1] = tostring(c)
    end
    local file = ("feature_maps_conv%d.png"):format(n)
    figs:add(fm.plot.images(list, {
      cols = #list > 40 and 13 or 11, cell = 72, captions = captions, palette = "magma",
      range = { 0, 1 }, cblabel = "activation / its largest",
      title = ("%s: feature maps of convolution %d (layer %d%s) for test image %d, %s%s"):format(
        title, n, layer, layer ~= conv and ", after ReLU" or "", index, class,
        dead > 0 and (" - %d maps all zero"):format(dead) or ""),
      file = figs:path(file),
    }), ("feature maps, convolution %d"):format(n))
  end
end

-- ---- occlusion ----

-- explain.occlusion(model, ds, {patch = 4, stride = 2, batch = 2048}) -> result: hides a
-- patch x patch square (sets it to 0, the background) at every position on a grid in all images
-- of ds, and measures the accuracy lost. batch: about how many images go to one predict call.
--   result.base       accuracy on the intact images
--   result.map        28x28: mean accuracy drop (in percentage points) of the patches covering
--                     each pixel
--   result.by_class   list of 28x28 maps, the same for the images of each class
--   result.positions  how many positions were tried
function M.occlusion(model, ds, opts)
  opts = opts or {}
  local patch, stride = opts.patch or 4, opts.stride or 2
  if patch < 1 or patch > SIDE or stride < 1 then
    fail("occlusion", "patch must be 1..%d and stride at least 1 (got %d and %d)", SIDE, patch, stride)
  end
  local y = ds:labels():totable()
  local n = #y
  if n == 0 then fail("occlusion", "the dataset is empty") end
  local classes = #ds.classes
  local count = {}
  for c = 1, classes do count[c] = 0 end
  for _, c in ipairs(y) do count[c + 1] = count[c + 1] + 1 end
  -- Accuracy overall and per class of the predictions pred[offset + 1 .. offset + n].
  local function accuracies(pred, offset)
    local right, by_class = 0, {}
    for c = 1, classes do by_class[c] = 0 end
    for i = 1, n do
      if pred[offset + i] == y[i] then
        right = right + 1
        by_class[y[i] + 1] = by_class[y[i] + 1] + 1
      end
    end
    for c = 1, classes do by_class[c] = count[c] > 0 and by_class[c] / count[c] or 0 end
    return right / n, by_class
  end
  local base, base_by_class = accuracies(model:predict(ds):totable(), 0)
  -- The patches: the pixels (1-based, row-major) each one hides.
  local starts = {}
  for s = 0, SIDE - patch, stride do starts[#starts + 1] = s end
  if starts[#starts] ~= SIDE - patch then starts[#starts + 1] = SIDE - patch end
  local patches = {}
  for _, r0 in ipairs(starts) do
    for _, c0 in ipairs(starts) do
      local cells = {}
      for r = r0, r0 + patch - 1 do
        for c = c0, c0 + patch - 1 do cells[#cells + 1] = r * SIDE + c + 1 end
      end
      patches[#patches + 1] = cells
    end
  end
  -- Sums of drops over the patches covering each pixel, and how many cover it.
  local sum, covered, sum_class = {}, {}, {}
  for q = 1, SIDE * SIDE do sum[q], covered[q] = 0, 0 end
  for c = 1, classes do
    sum_class[c] = {}
    for q = 1, SIDE * SIDE do sum_class[c][q] = 0 end
  end
  -- Several patches per call to predict, each over a copy of all n images: one large call costs
  -- far less than many small ones. The copies come from a subset that repeats the images; the
  -- masks (one row per patch, 0 on the hidden pixels) are spread over the copies' rows by a 0/1
  -- matrix product.
  local per_call = math.max(1, (opts.batch or 2048) // n)
  for first = 1, #patches, per_call do
    local last = math.min(#patches, first + per_call - 1)
    local g = last - first + 1
    local repeated = {}
    for _ = 1, g do
      for i = 1, n do repeated[#repeated + 1] = i end
    end
    local masks = fm.ones(g, SIDE * SIDE)
    local spread = fm.zeros(g * n, g)
    for k = 1, g do
      for _, q in ipairs(patches[first + k - 1]) do masks:set(k, q, 0) end
      for i = 1, n do spread:set((k - 1) * n + i, k, 1) end
    end
    local hidden = ds:subset(repeated):images() * spread:matmul(masks)
    local pred = model:predict(hidden):totable()
    for k = 1, g do
      local acc, by_class = accuracies(pred, (k - 1) * n)
      local drop = 100 * (base - acc)
      for _, q in ipairs(patches[first + k - 1]) do
        sum[q] = sum[q] + drop
        covered[q] = covered[q] + 1
        for c = 1, classes do
          sum_class[c][q] = sum_class[c][q] + 100 * (base_by_class[c] - by_class[c])
        end
      end
    end
  end
  local function as_map(values)
    local rows = {}
    for r = 1, SIDE do
      rows[r] = {}
      for c = 1, SIDE do
        local q = (r - 1) * SIDE + c
        rows[r][c] = covered[q] > 0 and values[q] / covered[q] or 0
      end
    end
    return fm.tensor(rows)
  end
  local by_class = {}
  for c = 1, classes do by_class[c] = as_map(sum_class[c]) end
  return { base = base, map = as_map(sum), by_class = by_class, positions = #patches, n = n,
           patch = patch, stride = stride }
end

-- The pixel of a 28x28 map with the largest value: row, column (1-based), value.
function M.peak(map)
  local best, row, col = -math.huge, 1, 1
  for i, line in ipairs(map:totable()) do
    for j, v in ipairs(line) do
      if v > best then best, row, col = v, i, j end
    end
  end
  return row, col, best
end

-- explain.draw_occlusion(r, classes, title, figs): the overall map of an occlusion result and one
-- map per class.
function M.draw_occlusion(r, classes, title, figs)
  local what = ("%dx%d patch, stride %d, %d positions, %d test images"):format(r.patch, r.patch,
    r.stride, r.positions, r.n)
  figs:add(fm.plot.heatmap(r.map, {
    palette = "magma", values = false, cblabel = "accuracy drop (percentage points)",
    title = ("%s: occlusion, the accuracy lost when a patch is hidden\n(%s; %.1f%% intact)")
      :format(title, what, 100 * r.base),
    xlabel = "column", ylabel = "row",
    file = figs:path("occlusion.png"),
  }), "occlusion importance")
  -- One symmetric range for the ten classes: hiding a patch can also help a class (blue). The
  -- top 1% saturate, so that one striking patch does not wash out the rest.
  local a = abs_quantile(r.by_class, 0.99)
  if a == 0 then a = 1 end
  figs:add(fm.plot.images(r.by_class, {
    cols = 5, cell = 150, captions = classes, palette = "diverging", range = { -a, a },
    cblabel = "drop in the class's accuracy (points)",
    title = ("%s: occlusion per class, accuracy lost when a patch is hidden\n(%s; the top 1%% "
      .. "saturate)"):format(title, what),
    file = figs:path("occlusion_per_class.png"),
  }), "occlusion importance per class")
  return r
end

return M
