-- Ctrl-C and fit: during training SIGINT stops fit after the current batch, and stops Lua code in
-- on_epoch; fit then returns the history of the complete epochs marked interrupted, the model
-- keeping all it learnt. Afterwards, however fit ended, SIGINT is the host's again.
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
local h = m:fit(train, {epochs = 100000, verbose = false,
                        on_epoch = function(e) if e == 2 then interrupt_soon() end end})
T.ok(h.interrupted == true and tostring(h.stopped):find("^interrupted %(Ctrl%-C%) a[tf]") ~= nil,
     "fit returns its history marked interrupted: " .. tostring(h.stopped))
T.ok(m.epochs >= 2 and h.epochs == #h and #h.loss == #h and m.epochs == #h,
     "the complete epochs are in the history and the model: " .. m.epochs .. " and " .. #h)

-- a fit that fails (validation images of another size) gives Ctrl-C back too
T.err("do not fit", function() m:fit(train, {epochs = 1, validation = small, verbose = false}) end)
T.eq(m:fit(train, {epochs = 1, verbose = false}).epochs, 1, "fit works after a failed fit")
local ok, err = pcall(function()
  interrupt_soon()
  local t0 = fm.clock()
  repeat until fm.clock() - t0 > 5
end)
T.ok(not ok and tostring(err):find("interrupted", 1, true), "SIGINT after fit reaches the host: " .. tostring(err))

-- Ctrl-C stops Lua code in on_epoch too: a child fmnist-lua whose callback never returns (plainly,
-- inside a pcall that catches the interruption, in a fit called from a coroutine) gets a real
-- SIGINT while it loops.
-- fit must come back to the caller with its history marked interrupted, the model keeping its
-- epochs. `timeout` only makes sure that a child which cannot be stopped does not hang the suite.
local script = T.write(dir .. "/runaway.lua", [[
local fm = require "fmnist"
local stat = io.open("/proc/self/stat")
print("pid " .. stat:read("l"):match("^(%d+)"))
stat:close()
local ds = fm.load(arg[1])
local function looping(e) print("looping " .. e); io.stdout:flush() end
local function user_hook() end
debug.sethook(user_hook, "", 100000)
for _, how in ipairs{"plain", "caught", "coroutine"} do
  local m = fm.MLP{hidden = {8}, seed = 1}
  local before = m:weights(1)
  local function run()
    return pcall(m.fit, m, ds, {epochs = 5, verbose = false, on_epoch = function(e)
      if e < 2 then return end
      looping(e)
      if how == "caught" then while true do pcall(function() while true do end end) end end
      while true do end
    end})
  end
  local ok, err
  if how == "coroutine" then ok, err = coroutine.wrap(run)() else ok, err = run() end
  print(how, ok, type(err) == "table" and tostring(err.interrupted) .. " " .. tostring(err.stopped) or err,
        "epochs " .. m.epochs, "trained " .. tostring(m:weights(1) ~= before))
end
local hook, _, count = debug.gethook()
print("hook " .. tostring(hook == user_hook and count == 100000))
print("done")
]])
local host = os.getenv("FMNIST_HOST") or "./fmnist-lua"
local child = io.popen("timeout -s KILL 120 " .. host .. " " .. script .. " " .. dir
                       .. "/a-images-idx3-ubyte 2>&1")
local pid = child:read("l"):match("^pid (%d+)")
local out = {}
for _ = 1, 3 do
  repeat
    local line = child:read("l")
    out[#out + 1] = line
  until line == nil or line:find("^looping")
  os.execute("kill -INT " .. pid)
end
out[#out + 1] = child:read("a")
child:close()
out = table.concat(out, "\n")
for _, how in ipairs{"plain", "caught", "coroutine"} do
  local line = out:match("\n(" .. how .. "\t[^\n]*)") or ""
  T.ok(line:find("true\ttrue interrupted (Ctrl-C) in on_epoch after epoch 2; the history has the "
                 .. "2 complete epochs, the model all it learnt\tepochs 2\ttrained true", 1, true),
       "SIGINT stops a runaway on_epoch (" .. how .. "): " .. line)
end
T.ok(out:find("\nhook true\n", 1, true), "the script's own hook is back after each interruption")
T.ok(out:find("\ndone", 1, true), "the script goes on after fit was interrupted")
T.done()
