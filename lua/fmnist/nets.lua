-- fmnist.nets: networks described in Lua and compiled to the flat list of layers the engine
-- builds (each layer naming its inputs), and the preset architectures.
--
--   fm.Sequential{layer, ...}          layers one after the other (a list that nests in others)
--   fm.Residual{body = {...}, shortcut = {...}, activation = "relu"}
--                                      body(x) + shortcut(x) (x itself without a shortcut), then
--                                      the activation ("relu", "relu6" or false)
--   fm.Model{layers = {...}, kind =, l2 =, seed =}   any network; layers may hold the containers
--   fm.CNN{layers = {...}}             the same, kind "CNN" (the reference CNN without layers)
--   fm.ResNet{depth = 20, width = 16, seed =, l2 =}  the CIFAR ResNet of He et al. for 28x28
--   fm.MobileNet{width = 1, dropout = 0.2, seed =, l2 =}   depthwise-separable blocks for 28x28
--   nets.compile(list) -> flat list    what fm.Model does with its layers
--
-- A layer is what fm.Model takes: a name ("relu") or a table ({"conv2d", 32, 3, padding =
-- "same"}), with `name` and `inputs` when it does not simply take the layer before it.
local M = {}

local CONTAINER = {} -- the metatable marking containers

-- Raises at the caller of the function that called fail (level 3), or further up when asked.
local function fail(fname, fmt, ...)
  error(fname .. ": " .. string.format(fmt, ...), 3)
end

local function fail_at(level, fname, fmt, ...)
  error(fname .. ": " .. string.format(fmt, ...), level)
end

local check = require "fmnist.check"
local check_opts, int_opt, num_opt = check.options, check.integer, check.number

-- The entries of a plain list, read raw (no __index, __len or __pairs of the caller's runs);
-- any key but 1..n is an error naming it.
local function entries(list, what)
  local n = rawlen(list)
  for k in next, list do
    if math.type(k) ~= "integer" or k < 1 or k > n then
      error(string.format("%s must be a list, but it has the key %s", what,
        type(k) == "string" and ("'" .. k .. "'") or tostring(k)), 0)
    end
  end
  local out = {}
  for i = 1, n do out[i] = rawget(list, i) end
  return out
end

-- ---- containers ----

function M.Sequential(list)
  if type(list) ~= "table" then fail("Sequential", "a list of layers expected, got %s", type(list)) end
  return setmetatable({ kind = "sequential", items = entries(list, "Sequential: layers") }, CONTAINER)
end

local ACTIVATIONS = { relu = true, relu6 = true }

function M.Residual(opts)
  check_opts("Residual", opts, { body = true, shortcut = true, activation = true })
  if type(opts.body) ~= "table" or #opts.body == 0 then
    fail("Residual", "body must be a non-empty list of layers")
  end
  if opts.shortcut ~= nil and (type(opts.shortcut) ~= "table" or #opts.shortcut == 0) then
    fail("Residual", "shortcut must be a non-empty list of layers (leave it out for the identity)")
  end
  local act = opts.activation
  if act == nil then act = "relu" end
  if act ~= false and not ACTIVATIONS[act] then
    fail("Residual", "activation must be \"relu\", \"relu6\" or false, got %s", tostring(act))
  end
  return setmetatable({ kind = "residual", body = opts.body, shortcut = opts.shortcut,
                        activation = act }, CONTAINER)
end

-- A copy of a layer table (raw) that takes `from` as its input.
local function with_input(item, from)
  if type(item) ~= "table" then return { item, inputs = { from } } end
  if rawget(item, "inputs") ~= nil then return item end
  local layer = {}
  for k, v in next, item do layer[k] = v end
  layer.inputs = { from }
  return layer
end

-- Appends the layers of `list` to `out`, the first taking `from` (an index into out, 0 for the
-- network input); returns the index of the last layer emitted.
local function emit(list, out, from, what)
  local last = from
  for _, item in ipairs(entries(list, what)) do
    if getmetatable(item) == CONTAINER and item.kind == "sequential" then
      last = emit(item.items, out, last, what)
    elseif getmetatable(item) == CONTAINER and item.kind == "residual" then
      local input = last
      local body = emit(item.body, out, input, "Residual: body")
      local short = input
      if item.shortcut then short = emit(item.shortcut, out, input, "Residual: shortcut") end
      out[#out + 1] = { "add", inputs = { body, short } }
      last = #out
      if item.activation then
        out[#out + 1] = item.activation
        last = #out
      end
    else
      -- A plain layer: it takes `last` unless it says otherwise, or `last` is the one before.
      out[#out + 1] = last == #out and item or with_input(item, last)
      last = #out
    end
  end
  return last
end

-- The flat list of layers of a description that may hold containers; fname prefixes errors.
function M.compile(list, fname)
  fname = fname or "layers"
  if type(list) ~= "table" then
    error(string.format("%s: layers must be a list of layers, got %s", fname, type(list)), 0)
  end
  local out = {}
  emit(list, out, 0, fname .. ": layers") -- 0 stands for the network input until the end
  for _, layer in ipairs(out) do
    if type(layer) == "table" and rawget(layer, "inputs") then
      for k, ref in ipairs(layer.inputs) do
        if ref == 0 then layer.inputs[k] = "input" end
      end
    end
  end
  return out
end

-- ---- presets ----

local function conv_bn(out, filters, kernel, stride, act)
  out[#out + 1] = { "conv2d", filters, kernel, stride = stride, padding = "same", bias = false }
  out[#out + 1] = "batchnorm"
  if act then out[#out + 1] = act end
end

-- The CIFAR ResNet (He et al. 2016, section 4.2) sized for 28x28: a 3x3 stem of `width` channels,
-- three stages of (depth - 2) / 6 basic blocks at width, 2 width and 4 width channels, stride 2
-- entering stages 2 and 3 with 1x1 projection shortcuts, global average pooling, dense 10.
local function resnet_size(fname, depth, width)
  if math.type(depth) ~= "integer" or depth < 8 or depth > 302 or (depth - 2) % 6 ~= 0 then
    fail_at(4, fname, "depth must be 6n + 2 from 8 to 302 (8, 14, 20, 32, 44, 56, 110, ...), got %s",
      tostring(depth))
  end
  if math.type(width) ~= "integer" or width < 1 or width > 1024 then
    fail_at(4, fname, "width must be an integer from 1 to 1024, got %s", tostring(width))
  end
end

function M.resnet_layers(depth, width)
  resnet_size("nets.resnet_layers", depth, width)
  local per_stage = (depth - 2) // 6
  local layers = {}
  conv_bn(layers, width, 3, 1, "relu")
  for stage = 1, 3 do
    local c = width * 2 ^ (stage - 1) // 1
    for b = 1, per_stage do
      local stride = (stage > 1 and b == 1) and 2 or 1
      local body = {}
      conv_bn(body, c, 3, stride, "relu")
      conv_bn(body, c, 3, 1)
      local shortcut
      if stride ~= 1 then
        shortcut = {}
        conv_bn(shortcut, c, 1, stride)
      end
      layers[#layers + 1] = M.Residual{ body = body, shortcut = shortcut }
    end
  end
  layers[#layers + 1] = "global_avgpool"
  layers[#layers + 1] = { "dense", 10 }
  return layers
end

-- MobileNet (Howard et al. 2017) for 28x28: a 3x3 stem, depthwise-separable blocks (depthwise
-- 3x3 + batch norm + ReLU6, pointwise 1x1 + batch norm + ReLU6), stride 2 at 28 -> 14 -> 7,
-- global average pooling, dropout, dense 10. width scales every channel count.
function M.mobilenet_layers(width, dropout)
  if type(width) ~= "number" or not (width >= 0.125 and width <= 8) then
    fail("nets.mobilenet_layers", "width must be a number from 0.125 to 8, got %s", tostring(width))
  end
  if type(dropout) ~= "number" or not (dropout >= 0 and dropout < 1) then
    fail("nets.mobilenet_layers", "dropout must be a number in [0, 1), got %s", tostring(dropout))
  end
  local function ch(c) return math.max(8, math.floor(c * width + 0.5)) end
  local layers = {}
  conv_bn(layers, ch(32), 3, 1, "relu6")
  local blocks = { { 64, 1 }, { 128, 2 }, { 128, 1 }, { 256, 2 }, { 256, 1 }, { 256, 1 } }
  local channels = ch(32)
  for _, b in ipairs(blocks) do
    layers[#layers + 1] = { "conv2d", channels, 3, stride = b[2], padding = "same",
                            groups = channels, bias = false }
    layers[#layers + 1] = "batchnorm"
    layers[#layers + 1] = "relu6"
    channels = ch(b[1])
    conv_bn(layers, channels, 1, 1, "relu6")
  end
  layers[#layers + 1] = "global_avgpool"
  if dropout > 0 then layers[#layers + 1] = { "dropout", dropout } end
  layers[#layers + 1] = { "dense", 10 }
  return layers
end

-- ---- constructors ----

function M.install(fm)
  local graph_model, cnn_model = fm.Model, fm.CNN

  -- The C constructors read flat lists; containers are compiled first. Errors are raised again
  -- at the caller's level, so that they name the user's line, not this file.
  local function with_layers(ctor, fname)
    return function(opts)
      local ok, model = true, opts
      if type(opts) == "table" and rawget(opts, "layers") ~= nil then
        local copy = {}
        for k, v in next, opts do copy[k] = v end
        ok, copy.layers = pcall(M.compile, opts.layers, rawget(opts, "kind") or fname)
        if not ok then error(copy.layers, 2) end
        opts = copy
      end
      -- ctor called by pcall: its errors carry no place, and are raised at the caller's line
      ok, model = pcall(ctor, opts)
      if not ok then error(model, 2) end
      return model
    end
  end

  fm.Model = with_layers(graph_model, "Model")
  fm.CNN = with_layers(cnn_model, "CNN")
  fm.Sequential = M.Sequential
  fm.Residual = M.Residual

  fm.ResNet = function(opts)
    opts = check_opts("ResNet", opts, { depth = true, width = true, seed = true, l2 = true })
    local depth = int_opt("ResNet", opts, "depth", 20, 8, 302)
    local width = int_opt("ResNet", opts, "width", 16, 1, 1024)
    resnet_size("ResNet", depth, width)
    local ok, model = pcall(graph_model, { kind = "ResNet", seed = opts.seed, l2 = opts.l2,
                                           layers = M.compile(M.resnet_layers(depth, width)) })
    if not ok then error(model, 2) end
    return model
  end

  fm.MobileNet = function(opts)
    opts = check_opts("MobileNet", opts, { width = true, dropout = true, seed = true, l2 = true })
    local width = num_opt("MobileNet", opts, "width", 1, 0.125, 8)
    local dropout = num_opt("MobileNet", opts, "dropout", 0.2, 0, 0.99)
    local ok, model = pcall(graph_model, { kind = "MobileNet", seed = opts.seed, l2 = opts.l2,
                                           layers = M.compile(M.mobilenet_layers(width, dropout)) })
    if not ok then error(model, 2) end
    return model
  end
end

return M
