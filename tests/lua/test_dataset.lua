-- Datasets through fm.load: small fixture files made here, bad files refused with clear errors, CSV
-- files with the label wherever their header puts it, where the files came from (ds.source, print,
-- the warning when "train" and "test" come from different places), the views (subset, shuffle,
-- split, batches), and the real Fashion-MNIST when it is installed.
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

-- ---- CSV layouts: the header decides where the label is ----
-- The 20 images of `ds` as a CSV: label at column `at` (1-based) named `label_name`, pixel k
-- named pixel<k + base>, pixels in reverse order when `reversed`; no header when label_name is
-- false (then the label must be first).
local function layout_csv(name, at, label_name, base, reversed, eol)
  local x, y = ds:images(), ds:labels()
  local lines = {}
  local function order(k) return reversed and 785 - k or k end
  if label_name then
    local head = {}
    for c = 1, 785 do
      local k = c < at and c or c - 1
      head[c] = c == at and label_name or ("pixel" .. (order(k) - 1 + base))
    end
    lines[1] = table.concat(head, ",")
  end
  for i = 1, 20 do
    local row = {}
    for c = 1, 785 do
      local k = c < at and c or c - 1
      row[c] = c == at and tostring(math.tointeger(y:get(i)))
        or tostring(math.floor(x:get(i, order(k)) * 255 + 0.5))
    end
    lines[#lines + 1] = table.concat(row, ",")
  end
  return write(name, table.concat(lines, eol or "\n") .. (eol or "\n"))
end
for _, case in ipairs {
  { "label-last.csv", 785, "label", 1, false, "\n" },
  { "label-middle-crlf.csv", 300, "label", 1, false, "\r\n" },
  { "label-first-quoted-reversed.csv", 1, '"Label"', 1, true, "\r\n" },
  { "pixel0-label-last.csv", 785, "LABEL", 0, false, "\n" },
  { "unnamed-label.csv", 2, "class", 1, true, "\n" },
  { "no-header.csv", 1, false, 1, false, "\r\n" },
} do
  local path = layout_csv(table.unpack(case))
  local ok, got = pcall(fm.load, path)
  T.ok(ok and got:images() == ds:images() and got:labels() == ds:labels(),
    case[1] .. ": the same images and labels as the IDX files" .. (ok and "" or (": " .. tostring(got))))
  if ok then
    T.eq(got.source.label_column, case[2], case[1] .. ": source.label_column")
    T.eq(got.source.header, case[3] and true or false, case[1] .. ": source.header")
    T.eq(got.num_classes, 10, case[1] .. ": ten classes")
    T.eq(tostring(got):find("(labels in column " .. case[2] .. ")", 1, true) ~= nil, case[2] > 1,
      case[1] .. ": print(ds) says where the labels were when not first")
  end
end
T.eq(tostring(fm.load(dir .. "/label-last.csv")),
  "fmnist.Dataset 'label-last.csv': 20 images of 28x28, 10 classes, from " .. dir .. "/label-last.csv (labels in column 785)",
  "a CSV with the label last: all ten classes, and where the labels were")
-- headers that leave the label in doubt, or are wrong: named file and line
local row = "1," .. string.rep("0,", 783) .. "0"
local function header(first, last, n)
  local h = { first }
  for i = 1, (n or 784) do h[#h + 1] = "pixel" .. i end
  if last then h[#h + 1] = last end
  return table.concat(h, ",")
end
for _, case in ipairs {
  { "no-label.csv", header("pixel785") .. "\n" .. row .. "\n",
    "no-label.csv: line 1: the header has no label column (every column is named like pixelN; name the label column 'label')" },
  { "two-labels.csv", header("label", "label") .. "\n" .. row .. ",1\n",
    "two-labels.csv: line 1: columns 1 and 786 are both named 'label'" },
  { "two-candidates.csv", header("id", "target") .. "\n" .. row .. ",1\n",
    "two-candidates.csv: line 1: cannot tell the label column: columns 1 ('id') and 786 ('target') are not named like pixelN (name the label column 'label')" },
  { "label-and-id.csv", header("id", "label", 783) .. "\n" .. row .. "\n",
    "label-and-id.csv: line 1: column 1 ('id') is neither the label nor a pixel (pixelN)" },
  { "pixel-twice.csv", header("label", "pixel3", 783) .. "\n" .. row .. "\n",
    "pixel-twice.csv: line 1: pixel3 appears twice (columns 4 and 785)" },
  { "pixel-missing.csv", header("label", "pixel785", 783) .. "\n" .. row .. "\n",
    "pixel-missing.csv: line 1: pixel784 is missing (784 pixel columns, so pixel1 to pixel784; column 785 is pixel785)" },
  { "short-row.csv", header(nil, "label") .. "\r\n" .. row .. "\r\n1,2\r\n",
    "short-row.csv: line 3: 2 columns, expected 785 (a label and 784 pixels)" },
  { "long-row.csv", row .. "\n" .. row .. ",5\n",
    "long-row.csv: line 2: 786 columns, expected 785" },
  { "label-10-last.csv", header(nil, "label") .. "\n" .. string.rep("0,", 784) .. "10\n",
    "label-10-last.csv: line 2, column 785 (label): value 10 is outside 0-9" },
  { "not-square.csv", "1,2,3\n",
    "not-square.csv: line 1: 3 columns, a label and 2 pixels, which make no square image" },
} do
  T.err(case[3], function() return fm.load(write(case[1], case[2])) end)
end
local tiny = fm.load(write("tiny.csv", "3,0,255,0,255\n5,255,255,255,255\n"))
T.eq(tostring(tiny), "fmnist.Dataset 'tiny.csv': 2 images of 2x2, 10 classes (2 with images here), from "
  .. dir .. "/tiny.csv", "a CSV of 2x2 images without a header")
T.eq(tiny:image(1):totable(), { { 0, 1 }, { 0, 1 } }, "its pixels")

-- ---- where the files came from ----
T.eq(ds.source.kind, "idx", "source.kind of an IDX pair")
T.eq(ds.source.images, images, "source.images")
T.eq(ds.source.labels, dir .. "/small-labels-idx1-ubyte", "source.labels: the standard name beside it")
T.eq(ds.source.files, { images, dir .. "/small-labels-idx1-ubyte" }, "source.files")
T.eq(tostring(ds), "fmnist.Dataset 'small-images-idx3-ubyte': 20 images of 28x28, 10 classes, from "
  .. images .. " and small-labels-idx1-ubyte", "print(ds) names the files")
T.eq(tostring(labels_opt):match("from .*$"), "from " .. dir .. "/other-name and small-labels-idx1-ubyte",
  "labels of another name in the same directory: its name")
os.execute("mkdir -p " .. dir .. "/elsewhere")
T.write(dir .. "/elsewhere/y", idx_labels(20))
T.eq(tostring(fm.load(images, {labels = dir .. "/elsewhere/y"})):match("from .*$"),
  "from " .. images .. " and " .. dir .. "/elsewhere/y", "labels in another directory: named in full")
T.eq(ds:subset(1, 3).source.images, images, "a view shares the source")
local src = ds.source
src.images, src.files[1] = "changed", "changed"
T.eq(ds.source.images, images, "ds.source is a copy: changing it changes nothing")
T.ok(tostring(ds):find(images, 1, true), "and print(ds) still names the file")
T.eq(fromcsv.source.file, csv, "source.file of a CSV")

-- "train" and "test" from $FMNIST_DATA: from one place, nothing to say; from two, a warning
local host = os.getenv("FMNIST_HOST") or "./fmnist-lua"
local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function run_with_data(data_dir, code)
  local err = dir .. "/stderr.txt"
  local p = io.popen(("FMNIST_DATA=%s %s -e %s 2>%s"):format(shell_quote(data_dir), host,
    shell_quote(code), shell_quote(err)))
  local out = p:read("a")
  p:close()
  return out, T.read(err) or ""
end
local both = dir .. "/both"
os.execute("mkdir -p " .. shell_quote(both))
T.write(both .. "/fashion-mnist_train.csv", T.read(dir .. "/label-last.csv"))
T.write(both .. "/fashion-mnist_test.csv", T.read(dir .. "/no-header.csv"))
local out, err = run_with_data(both, [[
local fm = require "fmnist"
local train, test = fm.load("train"), fm.load("test")
print(#train, train.source.split, train.source.dir, train.source.file, tostring(train.source.warning))
print(#test, test.source.split, test.source.file, tostring(test.source.warning))
print(train)
]])
T.eq(out, ("20\ttrain\t%s\t%s/fashion-mnist_train.csv\tnil\n20\ttest\t%s/fashion-mnist_test.csv\tnil\n"
  .. "fmnist.Dataset 'train': 20 images of 28x28, 10 classes, from %s/fashion-mnist_train.csv (labels in column 785)\n")
  :format(both, both, both, both), "both sets in $FMNIST_DATA: split, dir and file recorded, no warning")
T.eq(err, "", "nothing on stderr")
local only_train = dir .. "/only-train"
os.execute("mkdir -p " .. shell_quote(only_train))
T.write(only_train .. "/fashion-mnist_train.csv", T.read(dir .. "/label-last.csv"))
local system_test = io.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
if system_test then
  system_test:close()
  out, err = run_with_data(only_train, [[
local fm = require "fmnist"
local train = fm.load("train")
local test = fm.load("test")
fm.load("train")
print(train.source.warning)
print(test.source.warning)
print(test)
]])
  local want_train = ("the train set comes from %s ($FMNIST_DATA) but the test set from "
    .. "/usr/share/datasets/fashion-mnist (the system-wide copy): they may not belong together "
    .. "(keep both sets in one directory)"):format(only_train)
  local want_test = ("the test set comes from /usr/share/datasets/fashion-mnist (the system-wide "
    .. "copy) but the train set from %s ($FMNIST_DATA): they may not belong together (keep both "
    .. "sets in one directory)"):format(only_train)
  T.eq(out, want_train .. "\n" .. want_test .. "\n"
    .. "fmnist.Dataset 'test': 10000 images of 28x28, 10 classes, from /usr/share/datasets/fashion-mnist/"
    .. "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz\n  warning: " .. want_test .. "\n",
    "only a train CSV in $FMNIST_DATA: both sets say the test set comes from elsewhere, and print(ds) too")
  T.eq(err, "fmnist: warning: " .. want_train .. "\n", "one warning on stderr for three loads")
else
  T.skip("a train CSV in $FMNIST_DATA and the system-wide test set", "Fashion-MNIST is not installed in /usr/share/datasets/fashion-mnist")
end

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
  T.skip("the real Fashion-MNIST", tostring(test))
end

T.done()
