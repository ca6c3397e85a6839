-- t:save_png, fm.load_png and fm.png.grid: round trips, upscaling, grids, and broken files refused
-- with a message naming them.
local T = require "testlib"
local fm = require "fmnist"

local dir = T.tmpdir()
local function path(name) return dir .. "/" .. name end
local read, write = T.read, T.write

-- Values k/255 survive 8 bits exactly.
local function levels(rows, cols, step)
  local t = fm.zeros(rows, cols)
  for i = 1, rows do
    for j = 1, cols do t:set(i, j, ((i * cols + j) * step % 256) / 255) end
  end
  return t
end

-- ---- round trip ----
local img = levels(28, 28, 7)
local file = path("img.png")
T.eq(img:save_png(file), file, "save_png returns the path")
T.eq(read(file):sub(1, 8), "\137PNG\r\n\26\n", "the file is a PNG")
local back = fm.load_png(file)
T.eq(back:shape(), { 28, 28 }, "load_png gives height x width")
T.ok(back == img, "every pixel comes back exactly")

local wide = levels(3, 5, 40)
wide:save_png(path("wide.png"))
T.ok(fm.load_png(path("wide.png")) == wide, "a 3x5 image keeps its orientation")

-- A row of ds:images() (1-D of square length) is saved as a square.
local flat = img:reshape(784)
flat:save_png(path("flat.png"))
T.ok(fm.load_png(path("flat.png")) == img, "a 1-D tensor of 784 values is saved as 28x28")

-- Clamping and scale.
local c = fm.tensor { { -1, 0.5 }, { 2, 0 / 0 } }
c:save_png(path("clamp.png"), { scale = 3 })
local cb = fm.load_png(path("clamp.png"))
T.eq(cb:shape(), { 6, 6 }, "scale 3 makes each pixel 3x3")
T.eq({ cb:get(1, 1), cb:get(3, 3), cb:get(4, 1), cb:get(6, 6) }, { 0, 0, 1, 0 },
  "values are clamped to [0, 1], NaN written as 0")
T.near(cb:get(1, 4), 128 / 255, 1e-7, "0.5 becomes 128/255")
T.eq(cb:get(2, 5), cb:get(1, 4), "blocks are uniform")

T.eq(fm.png.save(img, path("alias.png")), path("alias.png"), "fm.png.save is save_png")
T.ok(fm.png.load(path("alias.png")) == img, "fm.png.load is load_png")

-- ---- bad arguments ----
T.err("option 'scale' must be an integer from 1 to 64, got 0", img.save_png, img, path("x.png"),
  { scale = 0 })
T.err("an image must be a 2-D tensor or a 1-D one of square length, got 10", img.save_png,
  fm.zeros(10), path("x.png"))
T.err("got 2x3x4", img.save_png, fm.zeros(2, 3, 4), path("x.png"))
T.err("no/such/dir/x.png: cannot write", img.save_png, img, path("no/such/dir/x.png"))
T.ok(read(path("x.png")) == nil, "nothing is written on a refused call")

-- ---- broken files name themselves ----
write(path("text.png"), "this is not a picture\n")
T.err(path("text.png") .. ": not a PNG file", fm.load_png, path("text.png"))
write(path("empty.png"), "")
T.err(path("empty.png") .. ": not a PNG file (empty)", fm.load_png, path("empty.png"))
T.err(path("missing.png") .. ": cannot open", fm.load_png, path("missing.png"))

local good = read(file)
write(path("half.png"), good:sub(1, #good // 2))
local msg = T.err(path("half.png") .. ": ", fm.load_png, path("half.png"))
T.ok(msg and msg:find("PNG", 1, true), "a truncated file is refused: " .. tostring(msg))

write(path("cut.png"), good:sub(1, 30))
T.err(path("cut.png") .. ": truncated PNG file", fm.load_png, path("cut.png"))

-- A flipped byte in the image data: the CRC (or zlib's checksum) notices.
local k = #good - 20
write(path("flip.png"), good:sub(1, k - 1) .. string.char(good:byte(k) ~ 0x5a) .. good:sub(k + 1))
T.err(path("flip.png") .. ": corrupt PNG file (libpng: ", fm.load_png, path("flip.png"))

-- Directories are not PNG files either.
T.err(dir .. ": cannot read (Is a directory)", fm.load_png, dir)

-- ---- grids ----
local a, b, c3 = fm.full(2, 2, 0.2), fm.full(2, 2, 0.4), fm.tensor { { 0, 1 }, { 1, 0 } }
local g = fm.png.grid({ a, b, c3 }, { cols = 2 })
T.eq(g:shape(), { 5, 5 }, "3 images of 2x2 in 2 columns with a 1-pixel gap: 5x5")
T.eq({ g:get(1, 1), g:get(1, 3), g:get(1, 4), g:get(3, 1), g:get(4, 1), g:get(5, 5) },
  { a:get(1, 1), 1, b:get(1, 1), 1, 0, 1 }, "images in place, gaps and the empty cell white")

g = fm.png.grid({ a, b }, { scale = 3, gap = 2, background = 0.5 })
T.eq(g:shape(), { 6, 14 }, "scale 3 and gap 2: 6x14")
T.eq(g:get(1, 7), 0.5, "the gap has the background value")

local cube = fm.rand(6, 28, 28)
local grid_file = path("grid.png")
T.eq(fm.png.grid(cube, { cols = 3, file = grid_file }), grid_file, "with file: returns the path")
local gb = fm.load_png(grid_file)
T.eq(gb:shape(), { 2 * 28 + 1, 3 * 28 + 2 }, "an n x h x w tensor, 3 columns")
T.near(gb:get(29, 1), 1, 0, "the gap row is white")
T.near(gb:get(30, 30), cube[5]:get(1, 1), 0.5 / 255, "image 5 starts at row 30, column 30")

local rows = fm.rand(4, 784)
T.eq(fm.png.grid(rows):shape(), { 57, 57 }, "an n x 784 tensor: square 28x28 images, 2x2 grid")

T.err("no images", fm.png.grid, {})
T.err("image 2 is 3x3 but image 1 is 2x2", fm.png.grid, { a, fm.zeros(3, 3) })
T.err("image 2 is a string", fm.png.grid, { a, "b" })
T.err("option 'cols' must be an integer from 1 to 16384, got 0", fm.png.grid, { a }, { cols = 0 })
T.err("one square image a row; got 3x5", fm.png.grid, fm.zeros(3, 5))

-- ---- options and sizes ----
T.err("png.grid: unknown option 'colums' (known: cols, scale, gap, gap_x, gap_y, background, file)",
  fm.png.grid, { a }, { colums = 2 })
T.err("save_png: unknown option 'scal' (known: scale)", img.save_png, img, path("x.png"), { scal = 2 })
T.err("option 'cols' must be an integer from 1 to 16384, got 1000000000", fm.png.grid, { a },
  { cols = 1e9 })
T.err("option 'cols' must be an integer", fm.png.grid, { a }, { cols = 2.5 })
T.err("option 'cols' must be an integer", fm.png.grid, { a }, { cols = 0 / 0 })
T.err("option 'scale' must be an integer from 1 to 64, got 65", fm.png.grid, { a }, { scale = 65 })
T.err("option 'scale' must be an integer from 1 to 64", img.save_png, img, path("x.png"),
  { scale = math.huge })
T.err("option 'gap' must be an integer from 0 to 1024, got -1", fm.png.grid, { a }, { gap = -1 })
T.err("option 'gap_y' must be an integer from 0 to 1024, got 5000", fm.png.grid, { a },
  { gap_y = 5000 })
T.err("option 'background' must be a number, got string", fm.png.grid, { a }, { background = "x" })
T.err("png.grid: option 'file' must be a string, got table", fm.png.grid, { a }, { file = {} })
T.ok(fm.png.grid({ a }, { background = 0 / 0, gap = 0 }):get(1, 1) == a:get(1, 1),
  "background NaN is allowed (fm.plot.images leaves gaps unpainted with it)")
-- Products of sizes and scale are checked before anything is allocated.
T.err("larger than the limit of 16384", img.save_png, fm.zeros(1, 300), path("x.png"), { scale = 64 })
T.err("larger than the limit of 16384 per side", fm.png.grid, fm.zeros(40, 28, 28),
  { cols = 40, scale = 64 })
local many = {}
for i = 1, 16385 do many[i] = a end
T.err("png.grid: 16385 images, more than the 16384 a grid can hold", fm.png.grid, many)
T.err("grid: 20000 images, more than the limit of 16384", fm.png.grid, fm.zeros(20000, 4))

-- ---- metamethods: options are read first, images anchored before their floats are used ----
-- An options table whose __index empties the list of images and collects the garbage: with the
-- images' floats already taken, this was a use-after-free (AddressSanitizer saw it).
do
  local list = { fm.rand(28, 28), fm.rand(28, 28), fm.rand(28, 28) }
  local opts = setmetatable({}, { __index = function(_, k)
    if k == "cols" then
      for i = #list, 1, -1 do list[i] = nil end
      collectgarbage("collect")
      collectgarbage("collect")
    end
  end })
  T.err("png.grid: no images", fm.png.grid, list, opts)
end
-- An __index that swaps the images for others of another size: the grid is made of what the list
-- holds after the options were read, whole.
do
  local list = { fm.full(2, 2, 0.25), fm.full(2, 2, 0.25) }
  local opts = setmetatable({}, { __index = function(_, k)
    if k == "scale" then
      list[1], list[2] = fm.full(3, 3, 0.75), fm.full(3, 3, 0.75)
      collectgarbage("collect")
    end
  end })
  local g2 = fm.png.grid(list, opts)
  T.eq({ g2:shape(), g2:get(1, 1), g2:get(3, 7) }, { { 3, 7 }, 0.75, 0.75 },
    "options whose __index swaps the images: the new images, whole")
end
-- The list is read raw: __len and __index are not consulted.
T.err("png.grid: no images", fm.png.grid, setmetatable({}, {
  __len = function() return 3 end, __index = function() return fm.zeros(2, 2) end }))
-- Finalizers that empty the list while the grid is drawn (the collector runs at every
-- allocation): the images are anchored, the grid comes out right.
do
  local imgs, list = {}, {}
  for i = 1, 8 do imgs[i] = fm.full(4, 4, i / 10); list[i] = imgs[i] end
  for _ = 1, 200 do setmetatable({}, { __gc = function() for i = 1, 8 do list[i] = nil end end }) end
  local pause = collectgarbage("setpause", 0)
  local stepmul = collectgarbage("setstepmul", 1000)
  local ok, g3 = pcall(fm.png.grid, list, { cols = 8, gap = 0 })
  collectgarbage("setpause", pause)
  collectgarbage("setstepmul", stepmul)
  local right = ok and g3:shape()[2] == 32
  for i = 1, 8 do right = right and g3:get(4, 4 * i) == imgs[i]:get(1, 1) end
  T.ok(right, "finalizers emptying the list during png.grid: every image drawn (" .. tostring(ok and "" or g3) .. ")")
end
-- save_png: options with an __index that collects garbage; the tensor is argument 1, anchored.
do
  local t = fm.full(2, 2, 0.5)
  local opts = setmetatable({}, { __index = function() collectgarbage("collect"); return nil end })
  T.eq(fm.load_png(t:save_png(path("gc.png"), opts)):shape(), { 2, 2 },
    "save_png with options whose __index runs the collector")
end

-- ---- names that are not regular files ----
T.err("/dev/zero: cannot read (not a regular file: a device, FIFO or socket)", fm.load_png,
  "/dev/zero")
local fifo = path("fifo.png")
if os.execute("mkfifo '" .. fifo .. "' 2>/dev/null") then
  -- Opening a FIFO without a writer would wait forever; it is refused at once.
  T.err(fifo .. ": cannot read (not a regular file", fm.load_png, fifo)
else
  T.ok(true, "# SKIP mkfifo is not available here")
end

T.done()
