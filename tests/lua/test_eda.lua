-- notebooks/eda.lua end to end: run through the host into a temporary directory, it prints the
-- tables and writes every figure it lists. Skipped when the Fashion-MNIST files are not installed.
local T = require "testlib"
local fm = require "fmnist"

local host = os.getenv("FMNIST_HOST") or "./fmnist-lua"
local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

if not pcall(fm.load, "test") then
  T.skip("the EDA notebook", "the Fashion-MNIST dataset is not installed")
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

-- The sets and their files.
T.ok(out:find(tostring(fm.load("train")) .. "\n" .. tostring(fm.load("test")), 1, true),
  "the first cell says which files each set came from")

-- The tables.
T.ok(out:find("train%s+60000%s+60000%s+28x28%s+0%.000%s+1%.000"), "train: shape and value range")
T.ok(out:find("test%s+10000%s+10000%s+28x28%s+0%.000%s+1%.000"), "test: shape and value range")
T.ok(out:find(" 0  T-shirt/top   6000   10.00   1000   10.00", 1, true)
  and out:find(" 9  Ankle boot    6000   10.00   1000   10.00", 1, true)
  and out:find(" -  total        60000  100.00  10000  100.00", 1, true),
  "per-class counts as an aligned table")
T.ok(out:find("6. Mean image and variation", 1, true) and out:find("Cells\n", 1, true),
  "the notebook runs as numbered cells and lists them at the end")

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

-- The mean images have a colour scale: the figure is wider by its box and label.
local means = fm.load_png(outdir .. "/mean_images.png")
T.ok(means:shape()[2] >= 800, "mean_images.png has room for a colour scale ("
  .. means:shape()[2] .. " pixels wide)")

-- ---- options ----
-- Run from an empty folder, so that a folder named after an option would show.
local cwd = dir .. "/cwd"
os.execute("mkdir -p " .. shell_quote(cwd))
local function run_in(args)
  local err = dir .. "/stderr.txt"
  local q = io.popen(("cd %s && %s %s/notebooks/eda.lua %s 2>%s"):format(shell_quote(cwd),
    shell_quote(host:sub(1, 1) == "/" and host or (os.getenv("PWD") .. "/" .. host)),
    shell_quote(os.getenv("PWD")), args, shell_quote(err)))
  local o = q:read("a")
  local good = q:close()
  return o, T.read(err) or "", good
end
local listing = function()
  local q = io.popen("ls -A " .. shell_quote(cwd))
  local l = q:read("a")
  q:close()
  return l
end
local o, err, good = run_in("--help")
T.ok(good and o:find("usage: fmnist-lua notebooks/eda.lua", 1, true) and o:find("--format FMT", 1, true),
  "--help prints the usage")
T.eq(listing(), "", "--help creates nothing (no folder named --help)")
o, err, good = run_in("--bogus")
T.ok(not good and err:find("eda.lua: unknown option '--bogus' (--help lists the options)", 1, true),
  "an unknown option is refused, by name (" .. err:gsub("\n.*", "") .. ")")
T.ok(not err:find("stack traceback", 1, true), "a usage error has no traceback")
o, err, good = run_in("--quick")
T.ok(not good and err:find("unknown option '--quick'", 1, true), "--quick is not an EDA option")
o, err, good = run_in("a b")
T.ok(not good and err:find("one output folder expected, got 2 arguments", 1, true), "two folders refused")
T.eq(listing(), "", "refused runs create nothing")

o, err, good = run_in("svg --format svg --cells 1,3")
T.ok(good, "--format svg --cells 1,3 runs")
local svg = T.read(cwd .. "/svg/class_distribution.svg") or ""
T.ok(svg:find("<svg", 1, true) ~= nil, "--format svg writes SVG figures")
T.ok(o:find("2. Shapes and value ranges  [not run: --cells 1,3]", 1, true)
  and not T.read(cwd .. "/svg/pixel_histogram.svg"), "--cells leaves the other cells out")
o, err, good = run_in("--format gif")
T.ok(not good and err:find("option --format must be one of png, svg, pdf, not 'gif'", 1, true),
  "an unknown format is refused, naming the ones known")
o, err, good = run_in("--list")
T.ok(good and o:find(" 6  Mean image and variation", 1, true) and not o:find("Load both sets%s*%-%-"),
  "--list lists the cells without running them")

T.done()
