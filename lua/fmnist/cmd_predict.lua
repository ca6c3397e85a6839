-- fmnist.cmd_predict: `fmnist-lua predict [options] MODEL IMAGE...` classifies pictures of one's
-- own with a saved model. Each picture goes through fm.image.load and fm.image.prepare (the
-- dataset's way of making its images), then model:predict_proba; the most likely classes are
-- printed with their probabilities, as text or as one JSON document.
--
-- Class ids are the dataset's labels 0..9 everywhere (fm.class_name(id) names them). A picture
-- that cannot be read or has no object is named on stderr and the others are still classified;
-- the exit status is 0 when all were, 1 when one was not (or the model could not be loaded), 2
-- for a usage error. The module returns the command: a function of the words after "predict".
local fm = require "fmnist"

local PROG = "fmnist-lua predict"

local USAGE = [[
usage: fmnist-lua predict [options] MODEL IMAGE...
Classifies pictures with a saved model (a .fmn file from model:save or a notebook).

Each IMAGE (PNG of any size: grey, RGB, palette, with alpha, 1 to 16 bits) is prepared as the
Fashion-MNIST images were made: a transparent background filled with white or black, whichever
the object stands out from; grey; inverted when the background is light, so that the object is
light on black; trimmed to the object; shrunk (or enlarged) so that its longest side is 28
pixels; centred on a black 28 x 28 canvas. Class ids are the dataset's labels, 0 to 9.

Options:
  --top N        print the N most likely classes (1 to 10; default 3)
  --json         print one JSON document on stdout instead of text
  --show         draw each prepared 28 x 28 image in the terminal beside its answer
                 (24-bit colour when COLORTERM says truecolor, else 256 colours)
  --invert WHEN  auto (invert when the border is light; the default), yes or no
  --margin N     keep N pixels free on each side of the canvas (0 to 13; default 0)
  --help         show this help and exit
  --             end of options

Exit status: 0 when every picture was classified, 1 when one was not (it is named on stderr),
2 for a usage error.
]]

-- ---- JSON: the little this command needs (strings, numbers, booleans, arrays, objects) ----

-- A string as valid UTF-8: bytes that are not part of a UTF-8 sequence become U+FFFD.
local function valid_utf8(s)
  if utf8.len(s) then return s end
  local out, i = {}, 1
  while i <= #s do
    local ok, ch = pcall(utf8.codepoint, s, i)
    if ok then
      local c = utf8.char(ch)
      out[#out + 1] = c
      i = i + #c
    else
      out[#out + 1] = "\u{FFFD}"
      i = i + 1
    end
  end
  return table.concat(out)
end

local json_escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function json_string(s)
  return '"' .. valid_utf8(s):gsub('[%c"\\]', function(c)
    return json_escapes[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

-- Arrays are tables with [1] (or the empty table given as an array by `array`); object keys are
-- written in sorted order, so that the output does not depend on hashing.
local ARRAY = setmetatable({}, { __mode = "k" })
local function array(t)
  ARRAY[t] = true
  return t
end

local function to_json(v)
  local kind = type(v)
  if kind == "string" then return json_string(v) end
  if kind == "boolean" then return tostring(v) end
  if kind == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    return ("%.6g"):format(v)
  end
  if kind == "table" then
    local parts = {}
    if ARRAY[v] or v[1] ~= nil then
      for i = 1, #v do parts[i] = to_json(v[i]) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys)
    for i, k in ipairs(keys) do parts[i] = json_string(k) .. ":" .. to_json(v[k]) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return "null"
end

-- ---- the terminal ----

-- A name as it may be shown on a terminal: control characters (escape sequences) become "?".
local function printable(s) return (s:gsub("%c", "?")) end

local function warn(msg) io.stderr:write(PROG, ": ", printable(msg), "\n") end

-- The 256-colour palette's nearest grey to v in [0,1]: 16 is black, 231 white, 232..255 the ramp
-- 8, 18, ..., 238.
local function grey256(v)
  local x = v * 255
  local best, code = x, 16          -- distance to black
  if 255 - x < best then best, code = 255 - x, 231 end
  local k = math.floor((x - 8) / 10 + 0.5)
  if k >= 0 and k <= 23 and math.abs(x - (8 + 10 * k)) < best then code = 232 + k end
  return code
end

-- Lines drawing a grey image with upper-half blocks: each character is two pixels, the upper one
-- its foreground and the lower one its background.
local function draw(img, truecolor)
  local shape = img:shape()
  local h, w = shape[1], shape[2]
  local function level(y, x)
    if y > h then return 0 end
    local v = img:get(y, x)
    return v > 0 and (v < 1 and v or 1) or 0
  end
  local lines = {}
  for y = 1, h, 2 do
    local cells = {}
    for x = 1, w do
      local top, bottom = level(y, x), level(y + 1, x)
      if truecolor then
        local a, b = math.floor(top * 255 + 0.5), math.floor(bottom * 255 + 0.5)
        cells[x] = ("\27[38;2;%d;%d;%dm\27[48;2;%d;%d;%dm\u{2580}"):format(a, a, a, b, b, b)
      else
        cells[x] = ("\27[38;5;%dm\27[48;5;%dm\u{2580}"):format(grey256(top), grey256(bottom))
      end
    end
    lines[#lines + 1] = table.concat(cells) .. "\27[0m"
  end
  return lines
end

-- ---- arguments ----

local function usage_error(msg)
  io.stderr:write(PROG, ": ", printable(msg), "\n", "Try 'fmnist-lua predict --help'.\n")
  return 2
end

local function parse(args)
  local o = { top = 3, json = false, show = false, invert = "auto", margin = 0, files = {} }
  local with_value = { ["--top"] = true, ["--invert"] = true, ["--margin"] = true }
  local i, options_done = 1, false
  while i <= #args do
    local a = args[i]
    if options_done or a == "-" or a:sub(1, 1) ~= "-" then
      o.files[#o.files + 1] = a
    elseif a == "--" then
      options_done = true
    else
      local name, value = a:match("^(%-%-[^=]+)=(.*)$")
      name = name or a
      if with_value[name] and not value then
        i = i + 1
        value = args[i]
        if value == nil then return nil, ("option %s needs a value"):format(name) end
      elseif not with_value[name] and value then
        return nil, ("option %s takes no value"):format(name)
      end
      if name == "--help" or name == "-h" then
        o.help = true
      elseif name == "--json" then
        o.json = true
      elseif name == "--show" then
        o.show = true
      elseif name == "--top" then
        local n = math.tointeger(tonumber(value))
        if not n or n < 1 or n > 10 then
          return nil, ("--top must be a whole number from 1 to 10, got '%s'"):format(value)
        end
        o.top = n
      elseif name == "--margin" then
        local n = math.tointeger(tonumber(value))
        if not n or n < 0 or n > 13 then
          return nil, ("--margin must be a whole number from 0 to 13, got '%s'"):format(value)
        end
        o.margin = n
      elseif name == "--invert" then
        local modes = { auto = "auto", yes = true, no = false }
        if modes[value] == nil then
          return nil, ("--invert must be auto, yes or no, got '%s'"):format(value)
        end
        o.invert = modes[value]
      else
        return nil, ("unknown option '%s' (known: --top, --json, --show, --invert, --margin, "
          .. "--help)"):format(name)
      end
    end
    i = i + 1
  end
  return o
end

-- ---- classifying ----

-- Classifies one picture: returns a result table, or nil and a message naming the file.
local function classify(model, path, o)
  local ok, img = pcall(fm.image.load, path)
  if not ok then return nil, (tostring(img):gsub("^image%.load: ", "")) end
  local prepared, info
  ok, prepared, info = pcall(fm.image.prepare, img, { invert = o.invert, margin = o.margin })
  if not ok then
    -- prepare's messages speak of the image; say which one.
    return nil, ("%s: %s"):format(path, (tostring(prepared):gsub("^image%.prepare: ", "")))
  end
  local probs = model:predict_proba(prepared)
  local ranked = {}
  for j = 1, probs:shape()[2] do
    ranked[j] = { class = j - 1, name = fm.class_name(j - 1), probability = probs:get(1, j) }
  end
  table.sort(ranked, function(a, b)
    if a.probability ~= b.probability then return a.probability > b.probability end
    return a.class < b.class
  end)
  local top = array({})
  for k = 1, math.min(o.top, #ranked) do top[k] = ranked[k] end
  return { file = path, class = top[1].class, name = top[1].name,
    probability = top[1].probability, top = top, image = prepared, prepared = info }
end

local function print_text(r, o, truecolor)
  local text = { printable(r.file) }
  for k, c in ipairs(r.top) do
    text[#text + 1] = ("  %d. %-12s class %d  %5.1f%%"):format(k, c.name, c.class,
      100 * c.probability)
  end
  if not o.show then
    local parts = {}
    for k, c in ipairs(r.top) do
      parts[k] = ("%s (class %d) %.1f%%"):format(c.name, c.class, 100 * c.probability)
    end
    print(("%s: %s"):format(printable(r.file), table.concat(parts, ", ")))
    return
  end
  local p = r.prepared
  text[#text + 1] = ""
  text[#text + 1] = ("  object %d x %d at row %d, column %d%s"):format(p.box.height, p.box.width,
    p.box.top, p.box.left, p.inverted and "; inverted (light background)" or "")
  local pic = draw(r.image, truecolor)
  for k = 1, math.max(#pic, #text) do
    print((pic[k] or (" "):rep(28)) .. "  " .. (text[k] or ""))
  end
end

return function(args)
  args = require("fmnist.check").strings("fmnist-lua predict", args, "the arguments")
  local o, err = parse(args)
  if not o then return usage_error(err) end
  if o.help then
    io.stdout:write(USAGE)
    return 0
  end
  if #o.files < 2 then
    return usage_error(#o.files == 0 and "no model and no image given" or "no image given")
  end
  local model_path = table.remove(o.files, 1)
  local ok, model = pcall(fm.load_model, model_path)
  if not ok then
    warn(tostring(model))
    return 1
  end
  local colorterm = os.getenv("COLORTERM") or ""
  local truecolor = colorterm:find("truecolor", 1, true) or colorterm:find("24bit", 1, true)
  local results, failed = array({}), 0
  for _, path in ipairs(o.files) do
    local done, r, msg = pcall(classify, model, path, o)
    if not done then r, msg = nil, ("%s: %s"):format(path, tostring(r)) end
    if r then
      if not o.json then print_text(r, o, truecolor) end
      r.image = nil
      results[#results + 1] = r
    else
      failed = failed + 1
      warn(msg)
      results[#results + 1] = { file = path, error = msg }
    end
  end
  if o.json then
    print(to_json({ model = model_path, ok = failed == 0, images = results }))
  end
  io.stdout:flush()
  return failed == 0 and 0 or 1
end
