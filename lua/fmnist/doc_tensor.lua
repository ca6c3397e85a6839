-- Help text of the tensors (lua/l_tensor.c, lua/l_png.c's save_png): see lua/fmnist/help.lua.
local doc = require("fmnist.help").section("Tensors", 20, [[
Tensors are float32 arrays of 1 to 4 dimensions that own their numbers. Indices are 1-based; every
operation makes a new tensor (t:fill and t:set change t itself). They print like numpy.]])

doc {
  name = "Tensor",
  class = "fmnist.Tensor",
  sig = "Tensor (fmnist.Tensor)",
  text = [[
A float32 array of 1 to 4 dimensions. Made by fm.tensor, fm.zeros, fm.ones, fm.full, fm.rand,
fm.randn, fm.arange, fm.load_npy, fm.load_png and by datasets and models. t[i] is row i (a copy)
or, for a 1-D tensor, element i; #t is the length of the first dimension; + - * / combine a
tensor with a number or with a tensor of the same shape (a row broadcasts over a matrix), and
-t, == work as expected.]],
  example = [[
local t = fm.tensor{{1, 2}, {3, 4}}
print(#t, t[2]:get(1), t:sum())               --> 2 3.0 10.0
print((t * 2 + 1):get(2, 2), t == t:clone())  --> 9.0 true
]],
  see = { "fm.tensor", "Tensor:shape" },
}

doc {
  name = "fm.tensor",
  sig = "fm.tensor(values) -> Tensor",
  text = [[
A tensor from a number list, or nested lists of equal lengths (a list of rows is a matrix). Raises
naming the row whose length differs or the value that is not a number.]],
  example = [[
local m = fm.tensor{{1, 2, 3}, {4, 5, 6}}
print(m:shape()[1], m:shape()[2], m:get(2, 3))   --> 2 3 6.0
]],
}

doc {
  name = "fm.zeros",
  sig = "fm.zeros(d1 [, d2, d3, d4]) -> Tensor   or   fm.zeros{d1, ...}",
  text = [[A tensor of the given shape filled with 0.]],
  example = [[
print(fm.zeros(2, 3):sum(), fm.zeros{4}:numel())   --> 0.0 4
]],
}

doc {
  name = "fm.ones",
  sig = "fm.ones(d1 [, ...]) -> Tensor",
  text = [[A tensor of the given shape filled with 1.]],
  example = [[
print(fm.ones(2, 3):sum())   --> 6.0
]],
}

doc {
  name = "fm.full",
  sig = "fm.full(d1 [, ...], value) -> Tensor   or   fm.full({d1, ...}, value)",
  text = [[A tensor of the given shape filled with value (NaN too, which figures draw as blank).]],
  example = [[
print(fm.full(2, 2, 0.5):sum())   --> 2.0
]],
}

doc {
  name = "fm.rand",
  sig = "fm.rand(d1 [, ...]) -> Tensor",
  text = [[
Uniform random numbers in [0, 1), from the generator that fm.seed sets (and that gives every
default seed of datasets and models).]],
  example = [[
fm.seed(1)
local r = fm.rand(1000)
print(r:min() >= 0, r:max() < 1)   --> true true
]],
  see = { "fm.seed", "fm.randn" },
}

doc {
  name = "fm.randn",
  sig = "fm.randn(d1 [, ...]) -> Tensor",
  text = [[Normally distributed random numbers (mean 0, standard deviation 1), from fm.seed's generator.]],
  example = [[
fm.seed(42)
print(("%.1f"):format(fm.randn(100000):std()))   --> 1.0
]],
}

doc {
  name = "fm.arange",
  sig = "fm.arange(stop)   fm.arange(start, stop [, step]) -> Tensor",
  text = [[numpy's half-open range: start, start + step, ... below stop (start 0, step 1 by default).]],
  example = [[
print(fm.arange(4):totable()[4], fm.arange(1, 2, 0.25):numel())   --> 3.0 4
]],
}

doc {
  name = "fm.seed",
  sig = "fm.seed(n)",
  text = [[
Seeds the generator behind fm.rand, fm.randn and every seed that is not given (model weights,
splits, shuffles). Any integer.]],
  example = [[
fm.seed(7); local a = fm.rand(3)
fm.seed(7); local b = fm.rand(3)
print(a == b)   --> true
]],
}

doc {
  name = "fm.load_npy",
  sig = "fm.load_npy(path) -> Tensor",
  text = [[
Reads a numpy .npy file (float32, float64 or uint8, C order, 1 to 4 dimensions) as a float32
tensor. Raises naming the file and what is wrong with it.]],
  example = [[
local path = os.tmpname()
fm.tensor{1, 2, 3}:save_npy(path)
print(fm.load_npy(path):sum())   --> 6.0
os.remove(path)
]],
  see = { "Tensor:save_npy" },
}

doc {
  name = "Tensor:shape",
  sig = "t:shape() -> {d1, ...}",
  text = [[The sizes of the dimensions, as a new list.]],
  example = [[
print(table.concat(fm.zeros(2, 3):shape(), "x"))   --> 2x3
]],
}

doc {
  name = "Tensor:dim",
  sig = "t:dim() -> integer",
  text = [[The number of dimensions, 1 to 4.]],
  example = [[
print(fm.zeros(2, 3, 4):dim())   --> 3
]],
}

doc {
  name = "Tensor:numel",
  sig = "t:numel() -> integer",
  text = [[The number of elements (the product of the shape).]],
  example = [[
print(fm.zeros(2, 3, 4):numel())   --> 24
]],
}

doc {
  name = "Tensor:get",
  sig = "t:get(i [, j, k, l]) -> number",
  text = [[The element at the 1-based indices, one per dimension. Raises naming the index out of range.]],
  example = [[
print(fm.tensor{{1, 2}, {3, 4}}:get(2, 1))   --> 3.0
]],
}

doc {
  name = "Tensor:set",
  sig = "t:set(i [, j, k, l], value) -> t",
  text = [[Sets the element at the 1-based indices (in place).]],
  example = [[
local t = fm.zeros(2, 2)
t:set(1, 2, 5)
print(t:sum())   --> 5.0
]],
}

doc {
  name = "Tensor:totable",
  sig = "t:totable() -> nested lists",
  text = [[The elements as Lua numbers in nested lists, one level per dimension.]],
  example = [[
print(fm.tensor{{1, 2}, {3, 4}}:totable()[2][1])   --> 3.0
]],
}

doc {
  name = "Tensor:matmul",
  sig = "a:matmul(b) -> Tensor",
  text = [[
Matrix product (OpenBLAS sgemm): 2-D a (m x k) times 2-D b (k x n), or a matrix times a vector.
Raises naming both shapes when they do not fit.]],
  example = [[
local a = fm.tensor{{1, 2}, {3, 4}}
print(a:matmul(a):get(2, 2))   --> 22.0
]],
}

for _, r in ipairs {
  { "sum", "The sum of all elements, or along dimension d (a tensor with that dimension removed).",
    "print(t:sum(), t:sum(1):get(2))   --> 10.0 6.0" },
  { "mean", "The mean of all elements, or along dimension d.",
    "print(t:mean(), t:mean(2):get(1))   --> 2.5 1.5" },
  { "std", "The standard deviation (of the population, divided by n) of all elements, or along d.",
    "print(('%.3f'):format(t:std()))   --> 1.118" },
  { "min", "The smallest element, or the smallest along dimension d.",
    "print(t:min(), t:min(1):get(2))   --> 1.0 2.0" },
  { "max", "The largest element, or the largest along dimension d.",
    "print(t:max(), t:max(2):get(1))   --> 4.0 2.0" },
  { "argmax", "The 1-based position of the largest element (flat), or along dimension d (a tensor of positions).",
    "print(t:argmax(), t:argmax(2):get(1))   --> 4 2.0" },
} do
  doc {
    name = "Tensor:" .. r[1],
    sig = ("t:%s([d]) -> number | Tensor"):format(r[1]),
    text = r[2],
    example = "local t = fm.tensor{{1, 2}, {3, 4}}\n" .. r[3] .. "\n",
  }
end

doc {
  name = "Tensor:reshape",
  sig = "t:reshape(d1 [, ...]) -> Tensor   or   t:reshape{d1, ...}",
  text = [[
The same elements in another shape (a copy); one dimension may be -1, to be worked out. Raises
naming both shapes when the counts differ.]],
  example = [[
local t = fm.arange(6)
print(t:reshape(2, 3):get(2, 1), t:reshape(-1, 2):shape()[1])   --> 3.0 3
]],
}

doc {
  name = "Tensor:transpose",
  sig = "t:transpose() -> Tensor",
  text = [[The transpose of a 2-D tensor (a copy).]],
  example = [[
print(fm.tensor{{1, 2}, {3, 4}}:transpose():get(1, 2))   --> 3.0
]],
}

doc {
  name = "Tensor:rows",
  sig = "t:rows(i [, j]) -> Tensor",
  text = [[Rows i to j (1-based, inclusive; j = i by default) along the first dimension, as a copy.]],
  example = [[
print(fm.arange(10):reshape(5, 2):rows(2, 3):sum())   --> 14.0
]],
}

doc {
  name = "Tensor:clone",
  sig = "t:clone() -> Tensor",
  text = [[A copy of t, with floats of its own (changing one leaves the other as it was).]],
  example = [[
local t = fm.ones(2)
local c = t:clone():fill(5)
print(t:sum(), c:sum())   --> 2.0 10.0
]],
}

doc {
  name = "Tensor:fill",
  sig = "t:fill(value) -> t",
  text = [[Sets every element to value, in place, and returns t.]],
  example = [[
print(fm.zeros(3):fill(2):sum())   --> 6.0
]],
}

doc {
  name = "Tensor:map",
  sig = "t:map(f) -> Tensor",
  text = [[A new tensor of f(x) for every element x (f must return a number).]],
  example = [[
print(fm.tensor{1, 2, 3}:map(function(x) return x * x end):sum())   --> 14.0
]],
}

for _, r in ipairs {
  { "abs", "|x|", "fm.tensor{-1, 2}:abs():sum()", "3.0" },
  { "exp", "e^x", "fm.tensor{0}:exp():get(1)", "1.0" },
  { "log", "the natural logarithm", "fm.tensor{1}:log():get(1)", "0.0" },
  { "sqrt", "the square root", "fm.tensor{9}:sqrt():get(1)", "3.0" },
} do
  doc {
    name = "Tensor:" .. r[1],
    sig = ("t:%s() -> Tensor"):format(r[1]),
    text = ("A new tensor of %s of every element."):format(r[2]),
    example = ("print(%s)   --> %s\n"):format(r[3], r[4]),
  }
end

for _, r in ipairs { { "add", "+" }, { "sub", "-" }, { "mul", "*" }, { "div", "/" } } do
  doc {
    name = "Tensor:" .. r[1],
    sig = ("t:%s(x) -> Tensor   (the same as t %s x)"):format(r[1], r[2]),
    text = ([[
Elementwise %s with a number or a tensor of the same shape (a 1-D tensor as long as a row
broadcasts over the rows of a matrix). Raises naming both shapes.]]):format(r[1] == "add" and "sum"
      or r[1] == "sub" and "difference" or r[1] == "mul" and "product" or "quotient"),
    example = ("print(fm.tensor{2, 4}:%s(2):sum(), (fm.tensor{2, 4} %s fm.tensor{1, 2}):get(2))   --> %s\n")
      :format(r[1], r[2], ({ add = "10.0 6.0", sub = "2.0 2.0", mul = "12.0 8.0", div = "3.0 2.0" })[r[1]]),
  }
end

doc {
  name = "Tensor:histc",
  sig = "t:histc([bins [, lo, hi]]) -> Tensor",
  text = [[
Counts of the elements in `bins` equal bins over [lo, hi] (default 100 bins over the tensor's own
min..max); values outside are left out.]],
  example = [[
print(table.concat(fm.tensor{1, 2, 3, 4}:histc(4, 0, 4):totable(), " "))   --> 0.0 1.0 1.0 2.0
]],
}

doc {
  name = "Tensor:save_npy",
  sig = "t:save_npy(path) -> t",
  text = [[Writes t as a numpy .npy file (float32, little-endian), which numpy.load reads.]],
  example = [[
local path = os.tmpname()
fm.ones(2, 2):save_npy(path)
print(fm.load_npy(path):shape()[1])   --> 2
os.remove(path)
]],
}

doc {
  name = "Tensor:save_png",
  sig = "t:save_png(path [, {scale = k}]) -> path",
  text = [[
Writes a 2-D tensor (or a 1-D one of square length, such as a row of ds:images()) as an 8-bit
grayscale PNG: values in [0, 1] (clamped), each pixel drawn as k x k.]],
  example = [[
local path = os.tmpname() .. ".png"
fm.rand(28, 28):save_png(path, {scale = 2})
print(fm.load_png(path):shape()[1])   --> 56
os.remove(path)
]],
  see = { "fm.load_png" },
}
