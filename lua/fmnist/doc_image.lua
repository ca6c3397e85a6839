-- Help text of pictures of one's own (lua/l_image.c: fm.image, fm.class_name): see
-- lua/fmnist/help.lua.
local doc = require("fmnist.help").section("Pictures of your own", 55, [[
fm.image makes any picture ready for the models: a photo of a shoe on a white table becomes a
28 x 28 grey image with a black background, the object trimmed, scaled and centred as the
dataset's are. An image is a tensor H x W (grey) or H x W x C with C = 1 grey, 2 grey + alpha,
3 RGB, 4 RGBA, values in [0, 1]; functions keep the layout they are given (2-D stays 2-D) unless
said otherwise. Rows and columns are 1-based. Errors name the function and the argument.]])

doc {
  name = "fm.image",
  sig = "fm.image",
  text = [[
Pictures of any size made ready for the models: load, grey, background, invert, trim, crop, pad,
resize, center, and prepare, which does all of it the way the dataset was made.]],
  example = [[
local pic = fm.full(40, 30, 1)                      -- a white page ...
for r = 10, 30 do for c = 8, 20 do pic:set(r, c, 0.1) end end   -- ... with a dark object
local x = fm.image.prepare(pic)
print(table.concat(x:shape(), "x"), x:max() > 0.8)   --> 28x28 true
]],
  see = { "fm.image.prepare", "fm.class_name" },
}

doc {
  name = "fm.image.load",
  sig = "fm.image.load(path) -> H x W x C tensor",
  text = [[
Any PNG (1 to 16 bits, grey, RGB, palette, with or without alpha or a transparency chunk) with its
channels and alpha kept, values in [0, 1]: a grey PNG gives H x W x 1, an RGBA one H x W x 4. The
size the file claims is checked before memory is taken for it; a file that is not a PNG, or is cut
short, is an error naming it. fm.load_png reads the same files as one grey channel.]],
  example = [[
local path = os.tmpname() .. ".png"
fm.ones(4, 6):save_png(path)
print(table.concat(fm.image.load(path):shape(), "x"))   --> 4x6x1
os.remove(path)
]],
  see = { "fm.load_png", "fm.image.grey" },
}

doc {
  name = "fm.image.grey",
  sig = "fm.image.grey(t [, opts]) -> H x W",
  text = [[
One grey channel: alpha composited onto a grey level first, then luminance 0.299 R + 0.587 G +
0.114 B (Rec. 601). The default background "auto" puts a dark object on white and a light one on
black, as a viewer would show it.]],
  options = {
    { "background", "the grey level behind transparent pixels, 0..1, or \"auto\" (default)" },
  },
  example = [[
local rgb = fm.zeros(2, 2, 3)
rgb:fill(1)
print(table.concat(fm.image.grey(rgb):shape(), "x"), fm.image.grey(rgb):mean())   --> 2x2 1.0
]],
}

doc {
  name = "fm.image.background",
  sig = "fm.image.background(t) -> level",
  text = [[
The median of a grey image's border pixels: its background level. Above 0.5 the background is
light (a photo on paper), and fm.image.prepare inverts it to the dataset's black.]],
  example = [[
local img = fm.zeros(10, 10)
img:set(5, 5, 1)
print(fm.image.background(img))   --> 0.0
]],
}

doc {
  name = "fm.image.invert",
  sig = "fm.image.invert(t) -> tensor",
  text = [[1 - t on every channel but alpha, in the layout given.]],
  example = [[
print(fm.image.invert(fm.zeros(2, 5)):sum())   --> 10.0
]],
}

doc {
  name = "fm.image.trim",
  sig = "fm.image.trim(t [, opts]) -> cropped, box",
  text = [[
The bounding box of the pixels of a grey image that differ from the background by more than
threshold, cut out, and the box as {top =, left =, height =, width =} (1-based). An image with no
such pixel is an error.]],
  options = {
    { "threshold", "how far from the background a pixel must be, in [0, 1) (default 0.1)" },
    { "background", "the background level, 0..1 (default the border's, fm.image.background)" },
  },
  example = [[
local img = fm.zeros(10, 10)
for r = 3, 6 do for c = 4, 8 do img:set(r, c, 1) end end
local cut, box = fm.image.trim(img)
print(table.concat(cut:shape(), "x"), box.top, box.left, box.height, box.width)   --> 4x5 3 4 4 5
]],
}

doc {
  name = "fm.image.crop",
  sig = "fm.image.crop(t, top, left, height, width) -> tensor",
  text = [[That box of t (1-based, inclusive of top and left); the box must lie inside the image.]],
  example = [[
print(table.concat(fm.image.crop(fm.zeros(10, 10), 2, 3, 4, 5):shape(), "x"))   --> 4x5
]],
}

doc {
  name = "fm.image.pad",
  sig = "fm.image.pad(t, top, bottom, left, right [, value]) -> tensor",
  text = [[t with margins of value (default 0) on each side, of the given numbers of pixels.]],
  example = [[
print(table.concat(fm.image.pad(fm.zeros(10, 10), 1, 2, 3, 4):shape(), "x"))   --> 13x17
]],
}

doc {
  name = "fm.image.resize",
  sig = "fm.image.resize(t, height, width) -> tensor",
  text = [[
To height x width: area averaging on an axis that shrinks (the mean is kept and nothing aliases),
bilinear interpolation on an axis that grows. Sides from 1 to 16384.]],
  example = [[
local img = fm.zeros(10, 10)
for r = 3, 6 do for c = 4, 8 do img:set(r, c, 1) end end
local small = fm.image.resize(img, 5, 5)
print(table.concat(small:shape(), "x"), small:mean() == img:mean())   --> 5x5 true
]],
}

doc {
  name = "fm.image.center",
  sig = "fm.image.center(t, size [, opts]) -> size x size",
  text = [[
A grey image that fits placed on a black size x size canvas, its centre of mass (or the middle of
its box) at the centre, as far as the canvas allows without cutting it.]],
  options = {
    { "by", "\"mass\" (default: the centre of mass, as MNIST) or \"box\" (the middle of the image)" },
  },
  example = [[
local c = fm.image.center(fm.ones(4, 5), 28, {by = "box"})
print(table.concat(c:shape(), "x"), c:sum())   --> 28x28 20.0
]],
}

doc {
  name = "fm.image.prepare",
  sig = "fm.image.prepare(t [, opts]) -> 28 x 28, info",
  text = [[
The dataset's own pipeline for any picture: alpha composited (background), grey, inverted when
the border is light, trimmed, levelled so that a dark background is 0, resized so that the
longest side is size - 2 * margin, and centred by its box as Fashion-MNIST is. info says what was
found: background (the border level before inversion), inverted, alpha_background (without
alpha: nil), box (in t's pixels), scaled = {height =, width =}, placed = {top =, left =}.]],
  options = {
    { "background", "the grey behind transparent pixels, 0..1 or \"auto\" (default)" },
    { "invert", "true, false or \"auto\" (default: when the border is light)" },
    { "threshold", "how far from the background the object's pixels are, [0, 1) (default 0.1)" },
    { "size", "the side of the result (default 28)" },
    { "margin", "pixels left empty on each side (default 0)" },
    { "center", "\"box\" (default, as the dataset) or \"mass\"" },
  },
  example = [[
local photo = fm.full(40, 30, 1)
for r = 10, 30 do for c = 8, 20 do photo:set(r, c, 0.2) end end
local x, info = fm.image.prepare(photo)
print(table.concat(x:shape(), "x"), info.inverted, info.box.top, info.scaled.height)   --> 28x28 true 10 28
]],
  see = { "fm.class_name", "Model:predict" },
}

doc {
  name = "fm.class_name",
  sig = "fm.class_name(id) -> string",
  text = [[
The name of class id 0..9 (the dataset's labels, as model:predict gives them): 0 T-shirt/top,
1 Trouser, ..., 9 Ankle boot. Anything else is an error saying what a class id is.]],
  example = [[
print(fm.class_name(0), fm.class_name(9))   --> T-shirt/top Ankle boot
print(pcall(fm.class_name, 10))   --> false class_name: 10 is not a class id (0 to 9, the dataset's labels)
]],
  see = { "fm.classes" },
}
