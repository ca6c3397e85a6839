-- fm.image and fm.class_name: PNG files of every kind loaded with colour and alpha kept, the
-- pieces of the preparation from Lua, fm.image.prepare on drawn pictures, and every argument
-- error naming what was wrong.
local T = require "testlib"
local W = require "pngwrite"
local D = require "drawings"
local fm = require "fmnist"
local I = fm.image

local dir = T.tmpdir()
local function path(name) return dir .. "/" .. name end

-- ---- loading: every colour type and depth ----
local function gradient(x, y) return x / 4, y / 2, (x + y) / 6, 1 - x / 4 end
for _, c in ipairs({ { "grey", 1 }, { "greya", 2 }, { "rgb", 3 }, { "rgba", 4 } }) do
  for _, depth in ipairs({ 8, 16 }) do
    for _, interlace in ipairs({ false, true }) do
      local file = W.write(path(("%s%d%s.png"):format(c[1], depth, interlace and "i" or "")),
        { width = 5, height = 3, color = c[1], depth = depth, interlace = interlace,
          pixel = gradient })
      local t = I.load(file)
      local what = ("%s %d-bit%s"):format(c[1], depth, interlace and " interlaced" or "")
      T.eq(t:shape(), { 3, 5, c[2] }, what .. ": H x W x " .. c[2])
      local want = table.pack(gradient(3, 1))
      local max = (1 << depth) - 1
      local ok = true
      for k = 1, c[2] do
        local q = math.floor(want[k] * max + 0.5) / max
        ok = ok and math.abs(t:get(2, 4, k) - q) < 1e-6
      end
      T.ok(ok, what .. ": pixel (2, 4) has every channel's value")
    end
  end
end

local pal = W.write(path("palette.png"), { width = 2, height = 1, color = "palette",
  palette = { { 1, 0, 0 }, { 0, 0, 1 } }, pixel = function(x) return x end })
local p = I.load(pal)
T.eq(p:shape(), { 1, 2, 3 }, "a palette image becomes RGB")
T.eq({ p:get(1, 1, 1), p:get(1, 1, 3), p:get(1, 2, 1), p:get(1, 2, 3) }, { 1, 0, 0, 1 },
  "palette entries are looked up")
local palt = W.write(path("palette-trns.png"), { width = 2, height = 1, color = "palette",
  palette = { { 1, 0, 0 }, { 0, 0, 1 } }, trns = { 0 }, pixel = function(x) return x end })
local pt = I.load(palt)
T.eq(pt:shape(), { 1, 2, 4 }, "a palette with tRNS becomes RGBA")
T.eq({ pt:get(1, 1, 4), pt:get(1, 2, 4) }, { 0, 1 }, "tRNS gives entry 0 alpha 0, others 1")
local greyt = W.write(path("grey-trns.png"), { width = 2, height = 1, color = "grey",
  trns = 255, pixel = function(x) return x end })
local gt = I.load(greyt)
T.eq(gt:shape(), { 1, 2, 2 }, "grey with tRNS becomes grey+alpha")
T.eq({ gt:get(1, 1, 2), gt:get(1, 2, 2) }, { 1, 0 }, "the tRNS grey value is transparent")

-- ---- loading: untrusted files ----
T.write(path("huge.png"), W.header(1 << 31, 1 << 31, 8, 6) .. W.chunk("IEND", ""))
T.err(path("huge.png") .. ": corrupt PNG file", I.load, path("huge.png"))
-- Within libpng's side limit, but over the pixel limit: refused before the memory is asked for,
-- so the missing image data is never reached.
T.write(path("big.png"), W.header(16384, 16384, 8, 6) .. W.chunk("IDAT", "\x78\x01")
  .. W.chunk("IEND", ""))
T.err(path("big.png") .. ": 16384 x 16384 pixels, more than the limit of 67108864 pixels",
  I.load, path("big.png"))
T.err(path("missing.png") .. ": cannot open", I.load, path("missing.png"))
T.write(path("text.png"), "not a picture")
T.err("image.load: " .. path("text.png") .. ": not a PNG file", I.load, path("text.png"))
local good = T.read(path("rgb8.png"))
T.write(path("cut.png"), good:sub(1, #good - 30))
T.err(path("cut.png") .. ": ", I.load, path("cut.png"))
T.err("(string expected, got no value)", I.load)

-- ---- grey and alpha ----
local rgba = fm.tensor({ { { 1, 0, 0, 1 }, { 0, 0, 1, 0.5 }, { 0.3, 0.6, 0.9, 0 } } })
local g = I.grey(rgba, { background = 1 })
T.eq(g:shape(), { 1, 3 }, "grey gives H x W")
T.near({ g:get(1, 1), g:get(1, 2), g:get(1, 3) }, { 0.299, 0.557, 1 }, 1e-6,
  "Rec. 601 luminance, alpha composited onto white")
T.near(I.grey(rgba):get(1, 3), 1, 0, "background auto: white behind a dark object")
T.near(I.grey(rgba, { background = "auto" }):get(1, 3), 1, 0, "\"auto\" is the default")
T.err("image.grey: option 'background' must be a number in [0, 1] or \"auto\", got",
  I.grey, rgba, { background = 0 / 0 })
T.err("image.grey: option 'background' must be a number in [0, 1] or \"auto\", got white",
  I.grey, rgba, { background = "white" })
T.err("image.grey: unknown option 'backgroud' (known: background)", I.grey, rgba,
  { backgroud = 1 })
T.err("image.grey: an image is a H x W or H x W x C tensor (C from 1 to 4), got 1x3x5", I.grey,
  fm.zeros(1, 3, 5))
T.err("image.grey: an image is a H x W or H x W x C tensor (C from 1 to 4), got 9", I.grey,
  fm.zeros(9))
T.err("image.grey: image: 0 x 3 pixels", I.grey, fm.zeros(0, 3))
T.err("fmnist.Tensor expected, got table", I.grey, {})

-- ---- background, invert, trim, crop, pad, resize, center ----
local pic = fm.full({ 20, 30 }, 0.9)
for y = 6, 9 do for x = 8, 16 do pic:set(y, x, 0.1) end end
T.near(I.background(pic), 0.9, 1e-6, "the border level of a light picture")
T.err("image.background: needs a grey image (H x W or H x W x 1), got 2x2x3", I.background,
  fm.zeros(2, 2, 3))
local inv = I.invert(pic)
T.near({ inv:get(1, 1), inv:get(6, 8) }, { 0.1, 0.9 }, 1e-6, "invert: 1 - v")
T.near(I.invert(fm.tensor({ { { 0.25, 0.5 } } })):get(1, 1, 2), 0.5, 0, "invert keeps alpha")
local cropped, box = I.trim(pic)
T.eq(box, { top = 6, left = 8, height = 4, width = 9 }, "trim: the box, 1-based")
T.eq(cropped:shape(), { 4, 9 }, "trim: the cropped object")
T.err("image.trim: no object: every pixel is within 0.1 of the background level 0.9", I.trim,
  fm.full({ 5, 5 }, 0.9))
T.err("image.trim: option 'threshold' must be a number in [0, 1), got", I.trim, pic,
  { threshold = 0 / 0 })
T.err("image.trim: option 'threshold' must be a number in [0, 1), got 1.0", I.trim, pic,
  { threshold = 1 })
T.err("image.trim: unknown option 'treshold' (known: threshold, background)", I.trim, pic,
  { treshold = 0.2 })

local c = I.crop(pic, 6, 8, 4, 9)
T.ok(c == cropped, "crop of the box is trim's result")
T.eq(I.crop(fm.zeros(4, 5, 3), 2, 2, 3, 4):shape(), { 3, 4, 3 }, "crop keeps the channels")
T.err("image.crop: height must be an integer from 1 to 4, got 0", I.crop, pic, 17, 1, 0, 1)
T.err("image.crop: width must be an integer from 1 to 3, got 4", I.crop, pic, 1, 28, 1, 4)
T.err("image.crop: top must be an integer from 1 to 20, got 0", I.crop, pic, 0, 1, 1, 1)
T.err("image.crop: left must be an integer from 1 to 30, got 1.5", I.crop, pic, 1, 1.5, 1, 1)
T.err("image.crop: height must be an integer from 1 to 20, got nothing", I.crop, pic, 1, 1)

local padded = I.pad(fm.ones(2, 2), 1, 0, 2, 3, 0.5)
T.eq(padded:shape(), { 3, 7 }, "pad adds rows and columns")
T.eq({ padded:get(1, 1), padded:get(2, 3), padded:get(3, 4), padded:get(3, 5) },
  { 0.5, 1, 1, 0.5 }, "pad: margins of the value around the image")
T.eq(I.pad(fm.ones(1, 1), 0, 0, 0, 1):get(1, 2), 0, "the pad value defaults to 0")
T.err("image.pad: bottom must be an integer from 0 to 16384, got -1", I.pad, pic, 0, -1, 0, 0)
T.err("image.pad: value must be a finite number, got", I.pad, pic, 0, 0, 0, 0, 0 / 0)
T.err("image.pad: result: 20 x 16414 pixels, more than the limit of 16384 per side", I.pad, pic,
  0, 0, 16384, 0)

local r = I.resize(fm.full({ 37, 53, 3 }, 0.3), 28, 19)
T.eq(r:shape(), { 28, 19, 3 }, "resize to 28 x 19 x 3")
T.near({ r:min(), r:max() }, { 0.3, 0.3 }, 1e-6, "a constant image stays constant")
local noise = fm.rand(45, 61)
T.near(I.resize(noise, 10, 7):mean(), noise:mean(), 1e-5, "area averaging keeps the mean")
T.near({ I.resize(fm.tensor({ { 0, 1 } }), 1, 4):get(1, 2) }, { 0.25 }, 1e-6,
  "bilinear growth")
T.err("image.resize: height must be an integer from 1 to 16384, got 0", I.resize, pic, 0, 5)
T.err("image.resize: width must be an integer from 1 to 16384, got 20000", I.resize, pic, 5,
  20000)
T.err("image.resize: result: 16384 x 16384 pixels, more than the limit of 67108864 pixels",
  I.resize, pic, 16384, 16384)
T.err("image.resize: height must be an integer from 1 to 16384, got 2.5", I.resize, pic, 2.5, 5)
T.err("image.resize: width must be an integer from 1 to 16384, got 7", I.resize, pic, 5, "7")

local dot = fm.zeros(10, 10)
dot:set(9, 9, 1); dot:set(10, 10, 1); dot:set(9, 10, 1); dot:set(10, 9, 1)
local centred = I.center(dot, 28)
T.eq({ centred:get(14, 14), centred:get(15, 15) }, { 1, 1 },
  "center by mass: the mass lands on the middle pixels")
T.eq(I.center(dot, 28, { by = "box" }):get(19, 19), 1, "center by box: the image's middle")
T.err("image.center: option 'by' must be one of \"mass\", \"box\", got middle", I.center, dot,
  28, { by = "middle" })
T.err("image.center: a 10 x 10 image does not fit on a 8 x 8 canvas", I.center, dot, 8)
T.err("image.center: size must be an integer from 1 to 16384, got -28", I.center, dot, -28)

-- ---- prepare ----
local pics = D.write_all(dir)
local expect = {
  trouser = { inverted = true, alpha = nil, scaled = { height = 28, width = 12 } },
  bag = { inverted = true, alpha = 1, scaled = { height = 23, width = 28 } },
  sneaker = { inverted = true, alpha = nil, scaled = { height = 9, width = 28 } },
}
for _, d in ipairs(pics) do
  local img = I.load(d.path)
  local prepared, info = I.prepare(img)
  local e = expect[d.name]
  T.eq(prepared:shape(), { 28, 28 }, d.name .. ": prepared is 28 x 28")
  T.eq({ info.inverted, info.alpha_background, info.scaled }, { e.inverted, e.alpha, e.scaled },
    d.name .. ": inverted, alpha background and size")
  T.eq({ prepared:get(1, 1), prepared:get(28, 28) }, { 0, 0 }, d.name .. ": black corners")
  T.ok(prepared:max() > 0.5, d.name .. ": the object is light")
end
-- The bag's transparent pixels are black in the file: without compositing, the black would be
-- taken for the background and the dark bag would vanish into it.
local bag = I.load(pics[2].path)
T.eq({ bag:get(1, 1, 1), bag:get(1, 1, 4) }, { 0, 0 }, "the bag's background is transparent black")
local _, binfo = I.prepare(bag, { background = 0 })
T.near(binfo.background, 0, 0, "composited onto black, the border is black (not inverted)")
T.eq(binfo.inverted, false, "a dark border is not inverted")

local light = I.load(pics[1].path)
local a = I.prepare(light, { margin = 4 })
T.eq({ a:get(2, 14), a:get(5, 14) }, { 0, a:get(5, 14) }, "margin 4: the first rows stay black")
T.ok(a:get(5, 14) > 0.5, "margin 4: the object starts at row 5")
local _, ninfo = I.prepare(light, { invert = false })
T.eq(ninfo.inverted, false, "invert = false is obeyed")
T.err("image.prepare: option 'invert' must be true, false or \"auto\", got yes", I.prepare, light,
  { invert = "yes" })
T.err("option 'margin' must be an integer from 0 to 13, got 14", I.prepare, light,
  { margin = 14 })
T.err("option 'size' must be an integer from 1 to 1024, got 0", I.prepare, light,
  { size = 0 })
T.err("image.prepare: option 'center' must be one of \"box\", \"mass\", got 1", I.prepare, light,
  { center = 1 })
T.err("image.prepare: unknown option 'colour' (known: background, invert, threshold, size, margin, "
  .. "center)", I.prepare, light, { colour = 1 })
T.err("image.prepare: no object: every pixel is within 0.1 of the background level",
  I.prepare, fm.full({ 30, 40, 3 }, 0.5))
T.eq(I.prepare(light, { size = 56, margin = 0 }):shape(), { 56, 56 }, "size 56")
local m = I.prepare(light, { center = "mass" })
T.eq(m:shape(), { 28, 28 }, "center = \"mass\"")

-- Options tables with metamethods are read as tables; a raising __index surfaces as an error.
T.err("boom", I.prepare, light, setmetatable({}, { __index = function() error("boom") end }))

-- ---- class names ----
T.eq(fm.class_name(0), "T-shirt/top", "class 0 is T-shirt/top")
T.eq(fm.class_name(1), "Trouser", "class 1 is Trouser")
T.eq(fm.class_name(9), "Ankle boot", "class 9 is Ankle boot")
T.eq(fm.class_name(7), fm.classes[8], "fm.classes is 1-based: name k + 1 is class k")
T.err("class_name: 10 is not a class id (0 to 9, the dataset's labels)", fm.class_name, 10)
T.err("class_name: -1 is not a class id", fm.class_name, -1)
T.err("class_name: 1.5 is not a class id", fm.class_name, 1.5)
T.err("class_name: 1 is not a class id", fm.class_name, "1")
T.err("class_name: nothing is not a class id", fm.class_name)
local saved = fm.classes[1]
fm.classes[1] = {}
T.err("class_name: the name of class 0 is a table, not a string", fm.class_name, 0)
fm.classes[1] = saved
T.eq(fm.class_name(0), "T-shirt/top", "restored")

T.done()
