-- Datasets through fm.load: small fixture files made here, bad files refused with clear errors, the
-- views (subset, shuffle, split, batches), and the real Fashion-MNIST when it is installed.
local T = require "testlib"
local fm = require "fmnist"

local dir = T.tmpdir()
local function write(name, bytes) return T.write(dir .. "/" .. name, bytes) end

-- n images of 28x28 where image i is filled with pixel value (i * 10) % 256, label i % 10
local function idx_images(n)
  local parts = {string.pack(">I4>I4>I4>I4", 0x803, n, 28, 28)}
  for i = 0, n - 1 do parts[#parts + 1] = string.rep(string.char((i * 10) % 256), 784) end
  return table.concat(parts)
end
local function idx_labels(n, f)
  local parts = {string.pack(">I4>I4", 0x801, n)}
  for i = 0, n - 1 do parts[#parts + 1] = string.char(f and f(i) or i % 10) end
  return table.concat(parts)
end

local images = write("small-images-idx3-ubyte", idx_images(20))
write("small-labels-idx1-ubyte", idx_labels(20))
local ds = fm.load(images)
T.eq(#ds, 20, "IDX pair: count")
T.eq(ds:label(3), 2, "IDX pair: label of image 3")
T.near(ds:image(2):get(1, 1), 10 / 255, 1e-6, "pixels scaled to [0,1]")
T.eq(table.concat(ds:image(2):shape(), "x"), "28x28", "image(i) is 28x28")
T.eq(table.concat(ds:images():shape(), "x"), "20x784", "images() is N x 784")
T.eq(table.concat(ds:counts(), ","), "2,2,2,2,2,2,2,2,2,2", "counts per class")
T.eq(ds.classes[1], "T-shirt/top", "classes[1]")
T.eq(ds.classes[10], "Ankle boot", "classes[10]")
T.ok(tostring(ds):find("20 images of 28x28", 1, true), "tostring: " .. tostring(ds))
T.eq(ds:labels()[20], 9, "labels() tensor")
T.near(ds:mean_image(1):get(5, 5), ((10 + 110) / 2) / 255, 1e-6, "mean image of class 1")
T.near(ds:std_image(1):get(5, 5), 50 / 255, 1e-6, "std image of class 1")

-- gzip and CSV give the same images
assert(os.execute("gzip -c " .. images .. " > " .. dir .. "/gz-images-idx3-ubyte.gz"))
assert(os.execute("gzip -c " .. dir .. "/small-labels-idx1-ubyte > " .. dir .. "/gz-labels-idx1-ubyte.gz"))
local gz = fm.load(dir .. "/gz-images-idx3-ubyte.gz")
T.ok(gz:images() == ds:images() and gz:labels() == ds:labels(), "gzip IDX equals raw IDX")
local rows = {"label," .. table.concat((function() local h = {} for i = 1, 784 do h[i] = "pixel" .. i end return h end)(), ",")}
for i = 0, 19 do
  rows[#rows + 1] = (i % 10) .. "," .. string.rep(tostring((i * 10) % 256) .. ",", 783) .. ((i * 10) % 256)
end
local csv = write("small.csv", table.concat(rows, "\r\n") .. "\r\n")
local fromcsv = fm.load(csv)
T.ok(fromcsv:images() == ds:images() and fromcsv:labels() == ds:labels(), "CSV (CRLF, header) equals IDX")
local labels_opt = fm.load(write("other-name", idx_images(20)), {labels = dir .. "/small-labels-idx1-ubyte"})
T.eq(#labels_opt, 20, "opts.labels names the labels file")

-- bad files: the error names the file and the problem
T.err("cannot open", function() return fm.load(dir .. "/missing-images-idx3-ubyte") end)
T.err("pass the labels", function() return fm.load(write("odd-name", idx_images(2))) end)
write("count-images-idx3-ubyte", idx_images(3))
write("count-labels-idx1-ubyte", idx_labels(2))
T.err("has 3 images but", function() return fm.load(dir .. "/count-images-idx3-ubyte") end)
write("bad-images-idx3-ubyte", idx_images(3))
write("bad-labels-idx1-ubyte", idx_labels(3, function(i) return i == 1 and 12 or 0 end))
T.err("bad-labels-idx1-ubyte", function() return fm.load(dir .. "/bad-images-idx3-ubyte") end)
write("trunc-images-idx3-ubyte", idx_images(3):sub(1, 16 + 784 * 2))
write("trunc-labels-idx1-ubyte", idx_labels(3))
T.err("trunc-images-idx3-ubyte", function() return fm.load(dir .. "/trunc-images-idx3-ubyte") end)
write("magic-images-idx3-ubyte", "\0\0\8\2" .. idx_images(1):sub(5))
write("magic-labels-idx1-ubyte", idx_labels(1))
T.err("magic-images-idx3-ubyte", function() return fm.load(dir .. "/magic-images-idx3-ubyte") end)
local badcsv = write("bad.csv", "1,2,3\n")
T.err("bad.csv", function() return fm.load(badcsv) end)
T.err("line 2", function() return fm.load(write("bad2.csv", rows[2] .. "\n" .. rows[3] .. ",7\n")) end)
T.err("bad argument #1 to 'load' (string expected, got no value)", function() return fm.load() end)
local saved = os.getenv("FMNIST_DATA")
-- "train" with nothing anywhere: the message says where it looked (only checkable when the
-- system-wide copy is absent)
if not io.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz") and not saved then
  T.err("apt-get install dataset-fashion-mnist", function() return fm.load("train") end)
end

-- views
local a, b = ds:split(0.5, {seed = 3, stratify = true})
T.eq(#a + #b, 20, "split covers the set")
T.eq(table.concat(a:counts(), ","), "1,1,1,1,1,1,1,1,1,1", "stratified split keeps proportions")
local a2 = ds:split(0.5, {seed = 3, stratify = true})
T.ok(a2:labels() == a:labels() and a2:images() == a:images(), "split is deterministic for a seed")
local sh = ds:shuffle(5)
T.eq(#sh, 20, "shuffle keeps the size")
T.eq(sh:labels():sum(), ds:labels():sum(), "shuffle keeps the labels")
T.ok(not (sh:labels() == ds:labels()), "shuffle changes the order")
T.eq(#ds:subset(3, 7), 5, "subset(first, last)")
T.eq(ds:subset(3, 7):label(1), 2, "subset keeps the rows")
T.eq(ds:subset{2, 4, 6}:label(3), 5, "subset{list}")
T.eq(#ds:subset{class = 4}, 2, "subset{class = c}")
T.eq(#ds:subset{n = 7}, 7, "subset{n = k}")
T.err("out of range", function() return ds:subset(0, 3) end)
local seen, nb = 0, 0
for x, y in ds:batches(8) do
  nb = nb + 1
  seen = seen + #y
  T.eq(#x, #y, "batch " .. nb .. ": x and y agree")
end
T.eq(nb, 3, "batches: 20 images in batches of 8 make 3")
T.eq(seen, 20, "batches cover every image")
local order = {}
for _, y in ds:batches(20, {shuffle = true, seed = 1}) do order = y:totable() end
T.ok(table.concat(order, ",") ~= table.concat(ds:labels():totable(), ","), "shuffled batches")

-- the real Fashion-MNIST, when installed
local ok, test = pcall(fm.load, "test")
if ok then
  T.eq(#test, 10000, "test set: 10000 images")
  T.eq(test:counts()[1], 1000, "test set: 1000 per class")
  local x = test:images()
  T.eq(table.concat(x:shape(), "x"), "10000x784", "test images shape")
  T.ok(x:min() == 0 and x:max() == 1, "pixels in [0, 1]")
  local train = fm.load("train")
  T.eq(#train, 60000, "train set: 60000 images")
  local fit, val = train:split(0.9, {seed = 1, stratify = true})
  T.eq(#fit, 54000, "90% split")
  T.eq(val:counts()[7], 600, "stratified validation: 600 shirts")
  -- the host prints 10000 and 1000 as integers
  local host = os.getenv("FMNIST_HOST") or "./fmnist-lua"
  local p = io.popen(host .. [[ -e 'local t = require("fmnist").load("test"); print(#t, t:counts()[1])']])
  T.eq(p:read("a"), "10000\t1000\n", "the issue's one-liner")
  p:close()
else
  T.ok(true, "# skip real dataset: " .. tostring(test))
end

T.done()
