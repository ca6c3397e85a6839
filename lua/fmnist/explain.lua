-- fmnist.explain: what a trained model looks at — the maps behind the explanation figures of the
-- model notebooks and notebooks/explain.lua.
--
--   explain.class_weights(model)            LogReg: each class's 784 weights as a 28x28 map
--   explain.pixel_importance(model)         LogReg: |weight| summed over the classes, 28x28
--   explain.saliency(model, x, classes, o) |d score / d pixel| for each image (N x 784), each
--                                           map scaled to its 99th percentile (SmoothGrad)
--   explain.filters(model [, layer])        the kernels of a convolution layer (first by default)
--   explain.feature_maps(model, image, l)   a layer's output for one image, channel by channel
--   explain.mean_saliency(model, ds)        |d score / d pixel| averaged over a set of images
--   explain.occlusion(model, ds, opts)      accuracy lost when a patch of every image is hidden
--   explain.peak(map)                       where a map is largest
--
-- and helpers for drawing them: explain.per_class (k images of each class), explain.enlarge
-- (a kernel in big squares), explain.input_like (an image at a feature map's size),
-- explain.abs_quantile (a colour range), explain.layers_of. The figures themselves are drawn by
-- the notebooks (notebooks/logreg.lua, mlp.lua, cnn.lua, explain.lua), in plain sight.
local fm = require "fmnist"

local M = {}

local SIDE = 28

local function fail(fname, fmt, ...)
  error("explain." .. fname .. ": " .. fmt:format(...), 0)
end

-- explain.layers_of(model, kind) -> the indices of the model's layers of one type ("conv2d",
-- "relu", ...).
local function layers_of(model, kind)
  local found = {}
  for i = 1, model.layers do
    if model:layer(i).type == kind then found[#found + 1] = i end
  end
  return found
end
M.layers_of = layers_of

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

-- explain.per_class(ds, k, seed) -> the indices in ds of k images of each class, picked with the
-- seed, class by class.
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
M.per_class = per_class

-- ---- convolution filters and feature maps ----

-- explain.enlarge(rows, f) -> a tensor with each value of the list of rows repeated in a block of
-- f x f, so that a 3x3 kernel is drawn as a clear 3x3 of squares.
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
M.enlarge = enlarge

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

-- explain.input_like(image, h, w) -> the input at the maps' size, so that it can lead their
-- grid: cut around its centre when the maps are only a few pixels smaller (a valid 3x3
-- convolution loses one on each side), else shrunk by averaging blocks of pixels (after pooling).
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
M.input_like = input_like

-- explain.mean_saliency(model, ds [, opts]) -> 28x28: the mean over the images of ds of
-- |gradient of the true class's score| at each pixel, the whole map scaled to its largest value:
-- where the model looks on average. opts.batch: images per gradient call (256).
function M.mean_saliency(model, ds, opts)
  opts = opts or {}
  local batch = opts.batch or 256
  local n = #ds
  if n == 0 then fail("mean_saliency", "the dataset is empty") end
  local sum
  for first = 1, n, batch do
    local last = math.min(n, first + batch - 1)
    local part = ds:subset(first, last)
    local g = model:gradient_wrt_input(part:images(), part:labels()):abs():sum(1)
    sum = sum and sum + g or g
  end
  local top = sum:max()
  return (top > 0 and sum / top or sum):reshape(SIDE, SIDE)
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

return M
