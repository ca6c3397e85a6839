-- Ctrl-C and fit: during training SIGINT stops fit after the current batch with an error that
-- names the epoch; afterwards, however fit ended, SIGINT is the host's again.
local fm = require "fmnist"
local T = require "testlib"

local function idx(path, n, side)
  T.write(path .. "-images-idx3-ubyte",
          string.pack(">I4>I4>I4>I4", 0x803, n, side, side) .. string.rep("\1", n * side * side))
  T.write(path .. "-labels-idx1-ubyte", string.pack(">I4>I4", 0x801, n) .. string.rep("\1", n))
  return fm.load(path .. "-images-idx3-ubyte")
end
local dir = T.tmpdir()
local train, small = idx(dir .. "/a", 64, 28), idx(dir .. "/b", 8, 10)

-- system() ignores SIGINT while its child runs, so the signal comes from a background job
local function interrupt_soon() os.execute("(sleep 0.2; kill -INT $PPID) &") end

local m = fm.MLP{hidden = {8}}
T.err("fit: interrupted at epoch", function()
  m:fit(train, {epochs = 100000, verbose = false, on_epoch = function(e) if e == 2 then interrupt_soon() end end})
end)
T.ok(m.epochs >= 2, "the epochs before the interruption count: " .. m.epochs)

-- a fit that fails (validation images of another size) gives Ctrl-C back too
T.err("do not fit", function() m:fit(train, {epochs = 1, validation = small, verbose = false}) end)
T.eq(m:fit(train, {epochs = 1, verbose = false}).epochs, 1, "fit works after a failed fit")
local ok, err = pcall(function()
  interrupt_soon()
  local t0 = fm.clock()
  repeat until fm.clock() - t0 > 5
end)
T.ok(not ok and tostring(err):find("interrupted", 1, true), "SIGINT after fit reaches the host: " .. tostring(err))
T.done()
