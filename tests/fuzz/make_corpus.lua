-- make_corpus.lua: the seed inputs of the file-format fuzz targets, written with the project's own
-- writers from the first images of the real test set (run by make_corpus.sh through fmnist-lua).
--   fmnist-lua tests/fuzz/make_corpus.lua CORPUS_DIR
local fm = require "fmnist"
local dir = assert(arg[1], "usage: make_corpus.lua CORPUS_DIR")

local function write(path, s)
  local f = assert(io.open(dir .. "/" .. path, "wb"))
  assert(f:write(s))
  assert(f:close())
end

local test = fm.load("test")
-- the first n images as bytes 0-255, and their labels
local function pixels(n)
  local x = test:images(1, n):reshape(-1)
  local out = {}
  for i = 1, x:numel() do out[i] = string.char(math.floor(x:get(i) * 255 + 0.5)) end
  return table.concat(out)
end
local function labels(n)
  local out = {}
  for i = 1, n do out[i] = string.char(test:label(i)) end
  return table.concat(out)
end

-- IDX: images and labels, a 1x1 image, a header cut short
local idx2 = string.pack(">I4I4I4I4", 0x803, 2, 28, 28) .. pixels(2)
local lab3 = string.pack(">I4I4", 0x801, 3) .. labels(3)
write("idx/images-2", idx2)
write("idx/labels-3", lab3)
write("idx/one-pixel", string.pack(">I4I4I4I4", 0x803, 1, 1, 1) .. "\x80")
write("idx/short-header", string.pack(">I4I4", 0x803, 2))
-- for fuzz_idx_gz: mode byte 1 (compress here) with the variants of the mode bits
write("idx_gz/compress-images", "\x01" .. idx2)
write("idx_gz/compress-labels-level9", "\x91" .. lab3)
write("idx_gz/truncated", "\x13" .. lab3)
write("idx_gz/two-members", "\x05" .. lab3)
write("idx_gz/stray-byte", "\x09" .. lab3)

-- CSV: header and two rows; one row without header, CRLF; a byte order mark
local function csv_row(i)
  local x = test:image(i):reshape(-1)
  local row = { tostring(test:label(i)) }
  for p = 1, 784 do row[#row + 1] = tostring(math.floor(x:get(p) * 255 + 0.5)) end
  return table.concat(row, ",")
end
local head = { "label" }
for p = 1, 784 do head[#head + 1] = "pixel" .. p end
write("csv/header-2-rows", table.concat(head, ",") .. "\n" .. csv_row(1) .. "\n" .. csv_row(2) .. "\n")
write("csv/crlf-no-header", csv_row(3) .. "\r\n")
write("csv/bom-no-newline", "\xEF\xBB\xBF" .. csv_row(4))
-- headers that place the label and the pixels: label last; quoted, pixel0-based, shuffled
write("csv/header-label-last", "pixel1,pixel2,pixel3,pixel4,label\n0,255,17,3,7\n1,2,3,4,0\n")
write("csv/header-quoted-pixel0", '"pixel3","Label","pixel0","pixel2","pixel1"\r\n9,4,0,0,255\r\n')

-- .npy: float32 through save_npy, and a uint8 array with a version 2 header by hand
local tmp = os.tmpname()
local function npy(t, name)
  t:save_npy(tmp)
  local f = assert(io.open(tmp, "rb"))
  write(name, f:read("a"))
  f:close()
end
npy(fm.arange(3), "npy/f4-3")
npy(fm.tensor { { 1, 2, 3 }, { 4, 5, 6 } }, "npy/f4-2x3")
npy(test:image(1), "npy/f4-28x28")
npy(fm.zeros(1, 2, 1, 2), "npy/f4-1x2x1x2")
local dict = "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }"
write("npy/u1-v2", "\x93NUMPY\x02\x00" .. string.pack("<I4", #dict) .. dict .. "\1\2\3\4")

-- PNG: an image, a grid (the engine's writer: 8-bit gray)
local function png(save, name)
  save(tmp)
  local f = assert(io.open(tmp, "rb"))
  write(name, f:read("a"))
  f:close()
end
png(function(p) test:image(1):save_png(p) end, "png/gray-28x28")
png(function(p) fm.png.grid({ test:image(2), test:image(3) }, { file = p, cols = 2 }) end,
  "png/grid")
png(function(p) fm.rand(3, 5):save_png(p) end, "png/gray-3x5")

-- models: the smallest networks of each kind of layer
local function model(m, name)
  m:save(tmp)
  local f = assert(io.open(tmp, "rb"))
  write(name, f:read("a"))
  f:close()
end
model(fm.CNN { layers = { { "conv2d", 2, 3 }, "relu", { "maxpool", 4 }, { "dense", 10 } }, seed = 1 },
  "model/cnn-tiny")
model(fm.CNN { layers = { { "conv2d", 1, 5, padding = "same" }, { "maxpool", 7 }, "flatten",
  { "dropout", 0.5 }, { "dense", 3 }, "relu", { "dense", 10 } }, seed = 2 }, "model/cnn-same-dropout")
model(fm.MLP { hidden = { 2 }, seed = 3 }, "model/mlp-2")
os.remove(tmp)
