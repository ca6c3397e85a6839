-- notebooks/eda.lua end to end: run through the host into a temporary directory, it prints the
-- tables and writes every figure it lists. Skipped when the Fashion-MNIST files are not installed.
local T = require "testlib"
local fm = require "fmnist"

local host = os.getenv("FMNIST_HOST") or "./fmnist-lua"
local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

if not pcall(fm.load, "test") then
  T.ok(true, "# skip the EDA notebook: the Fashion-MNIST dataset is not installed")
  T.done()
  return
end

local dir = T.tmpdir()
local outdir = dir .. "/figures" -- not there yet: the notebook makes it

local t0 = os.time()
local p = io.popen(host .. " notebooks/eda.lua " .. shell_quote(outdir) .. " 2>&1")
local out = p:read("a")
local ok = p:close()
local seconds = os.time() - t0
T.ok(ok, "the notebook runs to the end")
if not ok then print("# " .. out:gsub("\n", "\n# ")) end
T.ok(seconds <= 20, "in a few seconds (" .. seconds .. " s)")

-- The tables.
T.ok(out:find("train%s+60000%s+60000%s+28x28%s+0%.000%s+1%.000"), "train: shape and value range")
T.ok(out:find("test%s+10000%s+10000%s+28x28%s+0%.000%s+1%.000"), "test: shape and value range")
T.ok(out:find(" 0  T-shirt/top      6000   10.00     1000   10.00", 1, true)
  and out:find(" 9  Ankle boot       6000   10.00     1000   10.00", 1, true),
  "per-class counts as an aligned table")

-- The figures: each listed path is a readable PNG of a sensible size.
local expected = { "class_distribution.png", "pixel_histogram.png",
  "mean_intensity_per_class.png", "samples.png", "mean_images.png", "pixel_std.png" }
for _, name in ipairs(expected) do
  local file = outdir .. "/" .. name
  T.ok(out:find(file, 1, true), name .. ": its path is printed")
  local f = io.open(file, "rb")
  local head = f and f:read(8)
  if f then f:close() end
  T.eq(head, "\137PNG\r\n\26\n", name .. ": written as PNG")
  local okpng, img = pcall(fm.load_png, file)
  local shape = okpng and img:shape() or { 0, 0 }
  T.ok(shape[1] >= 300 and shape[2] >= 400, name .. ": " .. shape[2] .. "x" .. shape[1] .. " pixels")
end

-- The sample grid is tall (ten rows of ten) and mostly dark images on a white page.
local samples = fm.load_png(outdir .. "/samples.png")
local shape = samples:shape()
T.ok(shape[1] > shape[2], "samples.png is taller than wide (ten rows of images with captions)")

T.done()
