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

-- hostile sizes: every shape computation is checked, and the message names both shapes
local t12 = fm.arange(12)
T.err("reshape: a 12 tensor cannot become 1099511627776x1099511627776x-1: dimension 1 is 1099511627776",
      function() return t12:reshape(2^40, 2^40, -1) end)
T.err("reshape: a 12 tensor (12 elements) cannot become 1048576x1048576x-1",
      function() return t12:reshape(1 << 20, 1 << 20, -1) end)
T.err("reshape: a 12 tensor (12 elements) cannot become 5x-1", function() return t12:reshape(5, -1) end)
T.err("cannot become -2x6: dimension 1 is -2", function() return t12:reshape(-2, 6) end)
T.err("cannot become -1x-1: only one dimension may be -1", function() return t12:reshape(-1, -1) end)
T.err("a 0 tensor cannot become 0x-1: -1 is ambiguous beside a zero dimension",
      function() return fm.zeros(0):reshape(0, -1) end)
T.eq(table.concat(fm.zeros(0, 5):reshape(5, 0):shape(), "x"), "5x0", "reshape of an empty tensor")
T.err("reshape: dimension 2 is", function() return t12:reshape{2, 0/0} end)
T.err("reshape: dimension 1 is x (an integer expected)", function() return t12:reshape{"x", 6} end)
T.err("1 to 4 dimensions expected, got 4611686018427387904",
      function() return t12:reshape(setmetatable({}, {__len = function() return 1 << 62 end})) end)
T.err("1 to 4 dimensions expected, got -1",
      function() return t12:reshape(setmetatable({}, {__len = function() return -1 end})) end)
T.err("zeros: shape 1048576x1048576: a tensor of more than 17179869184 elements is refused",
      function() return fm.zeros(1 << 20, 1 << 20) end)
T.err("rand: shape 17179869185: a tensor of more than", function() return fm.rand((1 << 34) + 1) end)
T.err("randn: shape 1099511627776x0: a tensor of more than", function() return fm.randn(2^40, 0) end)
T.eq(fm.ones(0, 7):numel(), 0, "a zero dimension beside a large one is an empty tensor")
T.err("a shape has 1 to 4 dimensions, not 4611686018427387904",
      function() return fm.zeros(setmetatable({}, {__len = function() return 1 << 62 end})) end)
T.err("a shape has 1 to 4 dimensions, not -3",
      function() return fm.ones(setmetatable({}, {__len = function() return -3 end})) end)
T.err("zeros: dimension 2 of the shape is", function() return fm.zeros{2, 0/0} end)
T.err("full: dimension 1 of the shape is 1.5 (a non-negative integer expected)",
      function() return fm.full({1.5}, 0) end)
T.err("zeros: dimension 2 of the shape is -3 (dimension must not be negative)",
      function() return fm.zeros{2, -3} end)
T.err("bad argument #2 to 'zeros' (nothing may follow a shape table)", function() return fm.zeros({2}, 3) end)
T.err("bad argument #2 to 'full' (nothing may follow a shape table)", function() return fm.full({2}, {3}, 5) end)
T.err("number has no integer representation", function() return fm.zeros(0/0) end)
T.err("number has no integer representation", function() return fm.ones(1/0) end)
T.err("arange: start 0, stop", function() return fm.arange(0/0) end)
T.err("start and stop must be finite", function() return fm.arange(0, 1/0) end)
T.err("step finite and non-zero", function() return fm.arange(0, 1, 0) end)
T.err("arange: start -1e+308, stop 1e+308, step 1 would make inf elements",
      function() return fm.arange(-1e308, 1e308) end)
T.err("would make", function() return fm.arange(0, 1e300, 1e-300) end)
T.eq(fm.arange(5, 1):numel(), 0, "arange with stop below start is empty")
T.err("get: index 9007199254740992 out of range for dimension 1 of a 12 tensor",
      function() return t12:get(2^53) end)
T.err("index -9223372036854775808 out of range", function() return t12:get(math.mininteger) end)
T.err("number has no integer representation", function() return t12:get(2^63) end)
T.err("number has no integer representation", function() return t12:set(0/0, 1) end)
T.err("tensor index must be an integer", function() return t12[2^63] end)
T.err("index 0 out of range", function() return t12[0] end)
T.err("index 13 out of range for a tensor of 12 elements", function() t12[13] = 1 end)
T.err("rows: -9223372036854775808..9223372036854775807 out of range",
      function() return t12:rows(math.mininteger, math.maxinteger) end)
T.eq(t12:rows(13, 12):numel(), 0, "rows(n + 1, n) is empty")
T.err("bad argument #1 to 'histc' (bins must be in 1..16777216)", function() return t12:histc(0) end)
T.err("histc: the range [0, inf] must be finite", function() return t12:histc(10, 0, 1/0) end)
T.err("histc: the range [", function() return t12:histc(10, 0/0, 1) end)
T.err("histc: the range [2, 1] is empty", function() return t12:histc(10, 2, 1) end)
T.eq(fm.tensor{1, 1/0, 2, 0/0, -1/0}:histc(2):totable(), {1, 1},
     "histc over the data's range counts finite values only")
T.eq(fm.tensor{0/0, 1/0}:histc(2):totable(), {0, 0}, "histc of no finite value is all zeros")
T.eq(fm.tensor{1e30, 1e30}:histc(1):totable(), {2}, "histc of one huge value")
T.err("matmul: 2x3 and 2x3 do not fit", function() return fm.zeros(2, 3):matmul(fm.zeros(2, 3)) end)
T.err("transpose: a 2-D tensor expected, got 12", function() return t12:transpose() end)
T.eq(table.concat(fm.zeros(0, 3):transpose():shape(), "x"), "3x0", "transpose of an empty matrix")
T.err("a file name must not contain a zero byte", function() return t12:save_npy("a\0b") end)
T.err("a file name must not contain a zero byte", function() return fm.load_npy("a\0b") end)

-- hostile tables: metamethods run code (collect garbage, drop references, lie about lengths)
-- while a tensor is built from them; the result is right or the error is clear, never a crash
local function churn() collectgarbage("collect") end
local lazy = setmetatable({}, {__index = function(_, i) churn(); return i * 2 end,
                               __len = function() churn(); return 3 end})
T.eq(fm.tensor(lazy):totable(), {2, 4, 6}, "tensor{} through __index and __len that collect garbage")
local rows = setmetatable({}, {__index = function(_, i)
  churn()
  return setmetatable({}, {__index = function(_, j) return i * 10 + j end, __len = function() return 2 end})
end, __len = function() return 2 end})
T.eq(fm.tensor(rows):totable(), {{11, 12}, {21, 22}}, "tensor{} of rows made on the fly")
local calls = 0
local growing = setmetatable({}, {__index = function() return 1 end,
                                  __len = function() calls = calls + 1; return calls end})
T.err("ragged table (a row at depth 1 has 2 elements, expected 1)", function() return fm.tensor(growing) end)
local shrinking = setmetatable({}, {__index = function(_, i) return i == 1 and {1, 2} or {3} end,
                                    __len = function() return 2 end})
T.err("ragged table", function() return fm.tensor(shrinking) end)
T.err("tensor: a table at depth 1 has length 4611686018427387904",
      function() return fm.tensor(setmetatable({}, {__len = function() return 1 << 62 end})) end)
T.err("tensor: a table at depth 2 has length -5", function()
  return fm.tensor{setmetatable({}, {__len = function() return -5 end})}
end)
T.err("tensor: expected a table at depth 2, got number", function() return fm.tensor{{1}, 2} end)
T.err("tensor: more than 4 levels of nesting", function() return fm.tensor{{{{{1}}}}} end)
local loop = {}
loop[1] = loop
T.err("more than 4 levels of nesting", function() return fm.tensor(loop) end)
T.err("boom", function()
  return fm.tensor(setmetatable({}, {__index = function() error("boom") end, __len = function() return 1 end}))
end)
local shape = setmetatable({}, {__index = function(_, i) churn(); return ({3, 4})[i] end,
                                __len = function() churn(); return 2 end})
T.eq(table.concat(fm.zeros(shape):shape(), "x"), "3x4", "a shape table read through metamethods")
local victim = fm.arange(6)
local dims = setmetatable({}, {__index = function(_, i) victim = nil; churn(); return ({2, 3})[i] end,
                               __len = function() return 2 end})
T.eq(victim:reshape(dims):get(2, 3), 5, "reshape keeps its tensor while the shape's __index collects garbage")

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
