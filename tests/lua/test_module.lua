-- The module from a stock lua5.4: require "fmnist" through package.cpath, the embedded pure-Lua
-- modules, and the version table.
local T = require "testlib"

local module = os.getenv("FMNIST_MODULE") or "fmnist.so"
local function stock_lua()
local dir = module:match("^(.*)/[^/]*$") or "."
local cmd = ([[lua5.4 -e 'package.cpath = "%s/?.so;" .. package.cpath
local fm = require "fmnist"
print(type(fm.zeros), fm.zeros(2, 3):numel(), fm.version, fm.versions().lua)' 2>&1]]):format(dir)
local p = io.popen(cmd)
local out = p:read("a")
local ok = p:close()
T.ok(ok, "stock lua5.4 loads the module: " .. out)
T.ok(out:find("function\t6\t", 1, true), "functions work from stock lua5.4")
T.ok(out:find("Lua 5.4", 1, true), "fm.versions().lua")
-- what package.loaded holds before or after the module opens does not reach fm.metrics
cmd = ([[lua5.4 -e 'package.cpath = "%s/?.so;" .. package.cpath
package.loaded["fmnist.result"] = 5
local fm = require "fmnist"
local r = fm.metrics(fm.tensor{1, 2}, fm.tensor{1, 1})
package.loaded["fmnist.result"], require = nil, nil
package.preload["fmnist.result"] = function() return {Result = 1} end
print(r.accuracy, package.loaded["fmnist.result"], fm.metrics(fm.zeros(1), fm.zeros(1)):report():match("T%%-shirt/top"))' 2>&1]]):format(dir)
p = io.popen(cmd)
out = p:read("a")
ok = p:close()
T.ok(ok and out == "0.5\tnil\tT-shirt/top\n", "stock lua5.4: a replaced fmnist.result does not reach fm.metrics: " .. out)
end

if os.getenv("FMNIST_SANITIZE") == "1" then
  -- a sanitized module cannot be loaded by an uninstrumented lua5.4
  T.ok(true, "# skip stock lua5.4 in a sanitizer build")
else
  stock_lua()
end

local fm = require "fmnist"
local v = fm.versions()
for _, k in ipairs{"fmnist", "lua", "openblas", "libpng", "zlib"} do
  T.ok(type(v[k]) == "string" and #v[k] > 0, "fm.versions()." .. k .. " = " .. tostring(v[k]))
end
local t0 = fm.clock()
local spin = 0
repeat spin = spin + 1 until fm.clock() - t0 > 0.01
T.ok(fm.clock() - t0 < 1, "fm.clock measures wall seconds with sub-second resolution")
T.done()
