-- Tensors: creation, inspection, arithmetic, reductions, shapes, printing, .npy, and the errors.
local T = require "testlib"
local fm = require "fmnist"

-- creation and inspection
local z = fm.zeros(2, 3)
T.eq(z:dim(), 2, "zeros: dim")
T.eq(table.concat(z:shape(), "x"), "2x3", "zeros: shape")
T.eq(#z, 2, "#t is the first dimension")
T.eq(z:numel(), 6, "numel")
T.eq(z:sum(), 0, "zeros sum to 0")
T.eq(fm.zeros{4, 5}:numel(), 20, "zeros takes a shape table")
T.eq(fm.ones(3):sum(), 3, "ones")
T.eq(fm.full(2, 2, 7):sum(), 28, "full(d1, d2, value)")
T.eq(fm.full({3}, 1.5):sum(), 4.5, "full({dims}, value)")
local a = fm.arange(5)
T.eq(a:numel(), 5, "arange(5) has 5 elements")
T.eq(a[1], 0, "arange starts at 0")
T.eq(a[5], 4, "arange stops before 5")
T.eq(fm.arange(1, 2, 0.25):numel(), 4, "arange with a step")
local m = fm.tensor{{1, 2}, {3, 4}}
T.eq(m:get(2, 1), 3, "tensor{{...}} and get(i, j)")
m:set(2, 1, 9)
T.eq(m:get(2, 1), 9, "set(i, j, v)")
T.eq(m[2]:totable()[1], 9, "t[i] on a 2-D tensor is its i-th row")
T.eq(m:totable()[1][2], 2, "totable")
local v = fm.tensor{1, 2, 3}
v[2] = 5
T.eq(v[2], 5, "t[i] = v on a 1-D tensor")

-- random numbers: seeded and reproducible
fm.seed(42)
local r1 = fm.rand(1000)
fm.seed(42)
local r2 = fm.rand(1000)
T.ok(r1 == r2, "same seed, same stream")
T.ok(r1:min() >= 0 and r1:max() < 1, "rand in [0, 1)")
T.near(r1:mean(), 0.5, 0.05, "rand mean near 0.5")
fm.seed(7)
local n = fm.randn(20000)
T.near(n:mean(), 0, 0.03, "randn mean near 0")
T.near(n:std(), 1, 0.03, "randn std near 1")
fm.seed(1)
local first = fm.rand(3):totable()
fm.seed(1)
T.eq(fm.rand(3):totable()[3], first[3], "fm.seed resets the generator")

-- arithmetic
local x = fm.tensor{{1, 2, 3}, {4, 5, 6}}
local y = fm.tensor{{6, 5, 4}, {3, 2, 1}}
T.eq((x + y):sum(), 42, "tensor + tensor")
T.eq((x - y):get(1, 1), -5, "tensor - tensor")
T.eq((x * y):get(2, 3), 6, "tensor * tensor (elementwise)")
T.eq((x / 2):get(2, 2), 2.5, "tensor / number")
T.eq((10 - x):get(1, 1), 9, "number - tensor")
T.eq((2 * x):sum(), 42, "number * tensor")
T.eq((-x):get(1, 3), -3, "unary minus")
local row = fm.tensor{10, 20, 30}
T.eq((x + row):get(2, 3), 36, "a row vector broadcasts over rows")
T.eq((row + x):get(1, 1), 11, "a row vector on the left broadcasts too")
T.eq((x - fm.tensor{{1, 1, 1}}):get(2, 1), 3, "a 1xC matrix broadcasts over rows")
T.err("add: shapes 2x3 and 3x2 do not fit", function() return x + x:transpose() end)
T.err("a tensor and a string do not combine", function() return x + "a" end)

-- matmul
local p = fm.tensor{{1, 2}, {3, 4}}:matmul(fm.tensor{{5, 6}, {7, 8}})
T.eq(p:totable()[1], {19, 22}, "matmul row 1")
T.eq(p:totable()[2], {43, 50}, "matmul row 2")
local mv = fm.tensor{{1, 2}, {3, 4}}:matmul(fm.tensor{1, 1})
T.eq(mv:dim(), 1, "matrix times vector is a vector")
T.eq(mv[2], 7, "matrix times vector")
T.err("matmul: 3x4 and 5x2 do not fit", function() return fm.zeros(3, 4):matmul(fm.zeros(5, 2)) end)
T.err("bad argument #1 to 'matmul' (fmnist.Tensor expected, got nil)",
      function() return fm.zeros(2, 2).matmul(nil, fm.zeros(2, 2)) end)
-- a method call counts from the first argument after self, as everywhere in Lua
T.err("bad argument #1 to 'matmul' (fmnist.Tensor expected, got number)",
      function() return fm.zeros(2, 2):matmul(3) end)
local big = fm.rand(64, 100)
local prod = big:matmul(big:transpose())
T.near(prod:get(3, 3), (big[3] * big[3]):sum(), 1e-3, "matmul agrees with a dot product")

-- reductions
T.eq(x:sum(), 21, "sum")
T.eq(x:mean(), 3.5, "mean")
T.near(x:std(), math.sqrt(35 / 12), 1e-6, "std (population)")
T.eq(x:min(), 1, "min")
T.eq(x:max(), 6, "max")
T.eq(x:argmax(), 6, "argmax over all is a 1-based flat index")
T.eq(x:sum(1):totable(), {5, 7, 9}, "sum over dimension 1")
T.eq(x:sum(2):totable(), {6, 15}, "sum over dimension 2")
T.eq(fm.tensor{{1, 9, 3}, {7, 2, 8}}:argmax(2):totable(), {2, 3},
     "argmax over dimension 2 gives 1-based indices")
T.eq(x:max(1):totable(), {4, 5, 6}, "max over dimension 1")
T.err("dimension 3 out of range", function() return x:sum(3) end)
T.err("the tensor is empty", function() return fm.zeros(0):max() end)

-- shapes
local rs = fm.arange(12):reshape(3, 4)
T.eq(rs:get(2, 1), 4, "reshape keeps row-major order")
T.eq(table.concat(rs:reshape(-1, 6):shape(), "x"), "2x6", "reshape infers -1")
T.err("reshape: a 3x4 tensor (12 elements) cannot become 5x2", function() return rs:reshape(5, 2) end)
local tr = rs:transpose()
T.eq(table.concat(tr:shape(), "x"), "4x3", "transpose shape")
T.eq(tr:get(1, 2), 4, "transpose values")
T.err("transpose: a 2-D tensor expected", function() return fm.zeros(2, 2, 2):transpose() end)
local sl = rs:rows(2, 3)
T.eq(table.concat(sl:shape(), "x"), "2x4", "rows(i, j) shape")
T.eq(sl:get(1, 1), 4, "rows(i, j) values")
T.err("rows: 3..5 out of range", function() return rs:rows(3, 5) end)
local c = rs:clone()
c:set(1, 1, 100)
T.eq(rs:get(1, 1), 0, "clone is a copy")
T.eq(rs:map(function(v) return v * v end):get(3, 4), 121, "map")
T.err("map: the function returned a string", function() return rs:map(function() return "x" end) end)
T.eq(fm.tensor{-1, 2}:abs():sum(), 3, "abs")
T.near(fm.tensor{1}:exp()[1], math.exp(1), 1e-6, "exp")
T.near(fm.tensor{math.exp(2)}:log()[1], 2, 1e-6, "log")
T.eq(fm.tensor{9}:sqrt()[1], 3, "sqrt")
local h = fm.tensor{0, 0.1, 0.5, 0.99, 1, 2}:histc(2, 0, 1)
T.eq(h:totable(), {2, 3}, "histc: hi goes in the last bin, outside is dropped")

-- printing
local s = tostring(fm.tensor{{1, 2}, {3, 4}})
T.ok(s:find("[[1. 2.]\n [3. 4.]]", 1, true), "tostring like numpy")
T.ok(s:find("2x2", 1, true), "tostring shows the shape")
local long = tostring(fm.arange(5000))
T.ok(long:find("...", 1, true) and #long < 200, "a large tensor is abbreviated")
T.ok(tostring(fm.tensor{0.5, 0.25}):find("0.5000", 1, true), "fractions print with 4 decimals")

-- errors on bad arguments never crash
T.err("bad argument #1 to 'zeros'", function() return fm.zeros("a") end)
T.err("dimension must not be negative", function() return fm.zeros(-1) end)
T.err("at most 4 dimensions", function() return fm.zeros(1, 1, 1, 1, 1) end)
T.err("more than", function() return fm.zeros(1 << 20, 1 << 20) end)
T.err("ragged table", function() return fm.tensor{{1, 2}, {3}} end)
T.err("is a string, not a number", function() return fm.tensor{1, "x"} end)
T.err("index 3 out of range", function() return fm.zeros(2)[3] end)
T.err("get: index 5 out of range for dimension 2", function() return fm.zeros(2, 3):get(1, 5) end)
T.err("get: a 2-D tensor takes 2 indices", function() return fm.zeros(2, 3):get(1) end)

-- .npy round trip
local dir = os.tmpname()
os.remove(dir)
local path = dir .. ".npy"
local w = fm.randn(3, 5)
w:save_npy(path)
local back = fm.load_npy(path)
T.ok(back == w, ".npy round trip is exact")
local f = assert(io.open(path, "rb"))
local bytes = f:read("a")
f:close()
T.eq(bytes:sub(1, 6), "\x93NUMPY", ".npy magic")
T.ok(bytes:find("'descr': '<f4'", 1, true) and bytes:find("(3, 5)", 1, true), ".npy header")
T.eq((#bytes - 60) % 4, 0, ".npy size")
-- a uint8 .npy written by hand: values stay 0-255
local hdr = "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }"
hdr = hdr .. string.rep(" ", 64 - 10 - #hdr - 1) .. "\n"
f = assert(io.open(path, "wb"))
f:write("\x93NUMPY\1\0", string.char(#hdr % 256, #hdr // 256), hdr, "\0\1\128\255")
f:close()
local u8 = fm.load_npy(path)
T.eq(u8:reshape(4):totable(), {0, 1, 128, 255}, "uint8 .npy")
-- a truncated one is refused, naming the file
f = assert(io.open(path, "wb"))
f:write(bytes:sub(1, #bytes - 4))
f:close()
T.err(path .. ": holds", function() return fm.load_npy(path) end)
f = assert(io.open(path, "wb"))
f:write("not numpy at all")
f:close()
T.err("not a .npy file", function() return fm.load_npy(path) end)
os.remove(path)
T.err("cannot open", function() return fm.load_npy(path) end)
T.err("save_npy: /nonexistent-dir/x.npy: cannot write", function() w:save_npy("/nonexistent-dir/x.npy") end)

T.done()
