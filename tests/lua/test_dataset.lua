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

-- hostile arguments: lengths and indices from metamethods, NaN and huge numbers, bad options
local function churn() collectgarbage("collect") end
T.err("subset: a list of 4611686018427387904 indices (0 to 134217728 expected)", function()
  return ds:subset(setmetatable({}, {__len = function() return 1 << 62 end,
                                     __index = function(_, k) if math.type(k) == "integer" then return 1 end end}))
end)
T.err("subset: a list of -1 indices", function()
  return ds:subset(setmetatable({}, {__len = function() return -1 end}))
end)
local victim = fm.load(images)
local picks = setmetatable({}, {__len = function() churn(); return 3 end,
                                __index = function(_, i) victim = nil; churn(); return 21 - i end})
local sub = victim:subset(picks)
T.eq(sub:labels():totable(), {9, 8, 7}, "subset through __len and __index that collect garbage")
local calls = 0
local shifty = setmetatable({}, {__len = function() calls = calls + 1; return calls == 1 and 2 or 1000 end,
                                 __index = function() return 1 end})
T.eq(#ds:subset(shifty), 2, "a list's length is read once")
T.err("subset: entry 2 is x (an integer index expected)", function() return ds:subset{1, "x"} end)
T.err("subset: entry 1 is 1.5 (an integer index expected)", function() return ds:subset{1.5} end)
T.err("subset: index 0 out of range 1..20", function() return ds:subset{0} end)
T.err("subset: index 9007199254740992 out of range 1..20", function() return ds:subset{2^53} end)
T.err("subset: entry 2 of the index tensor is", function() return ds:subset(fm.tensor{1, 0/0}) end)
T.err("subset: entry 1 of the index tensor is inf (an index 1..20 expected)", function() return ds:subset(fm.tensor{1/0}) end)
T.err("subset: entry 1 of the index tensor is 1.0000000150475e+30", function() return ds:subset(fm.tensor{1e30}) end)
T.err("subset: entry 1 of the index tensor is 2.5", function() return ds:subset(fm.tensor{2.5}) end)
T.err("subset: entry 1 of the index tensor is -1.0", function() return ds:subset(fm.tensor{-1}) end)
T.eq(ds:subset(fm.tensor{20, 20, 1}):labels():totable(), {9, 9, 0}, "an index tensor may repeat")
T.eq(#ds:subset{}, 0, "an empty list gives an empty subset")
T.err("subset: give class or n, not both", function() return ds:subset{class = 1, n = 2} end)
T.err("subset: unknown option 'clas' (known: class, n)", function() return ds:subset{n = 2, clas = 1} end)
T.err("class id must be in 0..9", function() return ds:subset{class = 10} end)
T.err("number has no integer representation", function() return ds:subset{class = 0/0} end)
T.err("option 'n' must be an integer from 0 to 20, got -1", function() return ds:subset{n = -1} end)
T.err("option 'n' must be an integer from 0 to 20, got 9.007199254741e+15", function() return ds:subset{n = 2^53} end)
T.err("subset: range 3..2 is empty", function() return ds:subset(3, 2) end)
T.err("image 9007199254740992 out of range 1..20", function() return ds:subset(1, 2^53) end)
for _, i in ipairs{0, -1, 21, 2^53, math.mininteger} do
  T.err(("image %d out of range 1..20"):format(math.tointeger(i)), function() return ds:image(i) end)
end
T.err("number has no integer representation", function() return ds:image(0/0) end)
T.err("number has no integer representation", function() return ds:label(2^63) end)
T.err("images: range 3..2 is empty", function() return ds:images(3, 2) end)
T.err("fraction must be in [0, 1], got", function() return ds:split(0/0) end)
T.err("fraction must be in [0, 1], got inf", function() return ds:split(1/0) end)
T.err("fraction must be in [0, 1], got -0.1", function() return ds:split(-0.1) end)
T.err("split: unknown option 'sede' (known: seed, stratify, shuffle)", function() return ds:split(0.5, {sede = 1}) end)
T.err("option 'seed' must be an integer, got 1.5", function() return ds:split(0.5, {seed = 1.5}) end)
T.err("option 'stratify' must be a boolean", function() return ds:split(0.5, {stratify = 1}) end)
local none, all = ds:split(0)
T.ok(#none == 0 and #all == 20, "split(0) gives an empty first part")
all, none = ds:split(1, {stratify = true})
T.ok(#none == 0 and #all == 20, "split(1) gives an empty second part")
T.err("batch size must be at least 1, got 0", function() return ds:batches(0) end)
T.err("batch size must be at least 1, got -5", function() return ds:batches(-5) end)
T.err("number has no integer representation", function() return ds:batches(2.5) end)
T.err("batches: unknown option 'shufle' (known: shuffle, seed)", function() return ds:batches(8, {shufle = true}) end)
T.err("option 'seed' must be a number, got string", function() return ds:batches(8, {seed = "x"}) end)
local count = 0
for x, y in ds:batches(1 << 62) do count = count + 1; T.eq(#x, 20, "a huge batch size gives one batch of everything") end
T.eq(count, 1, "one batch")
T.err("batches: option keys are names, not number (known: shuffle, seed)",
      function() return ds:batches(3, {shuffle = true, seed = 2, [1] = true}) end)
T.err("load: unknown option 'lables' (known: labels)", function() return fm.load(images, {lables = "x"}) end)
T.err("load: option 'labels' must be a file name, got number", function() return fm.load(images, {labels = 5}) end)
T.err("load: option 'labels' must be a file name, got a string with a zero byte",
      function() return fm.load(images, {labels = "a\0b"}) end)
T.err("load: option 'labels' is for an IDX images file, not train", function() return fm.load("train", {labels = "x"}) end)
T.err("a file name must not contain a zero byte", function() return fm.load(images .. "\0.csv") end)
local sneaky = setmetatable({}, {__index = function() churn() end})
T.eq(#fm.load(images, sneaky), 20, "an options table whose __index collects garbage")

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
