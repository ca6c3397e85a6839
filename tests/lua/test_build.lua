-- The facts a build records: the git commit it was made from (host.build().git, which reports
-- print), recorded without making every build rebuild everything; and fm.threads.
local T = require "testlib"
local fm = require "fmnist"
local host = require "fmnist.host"

local function run(cmd)
  local p = io.popen(cmd .. " 2>/dev/null")
  local out = p:read("a")
  local _, _, status = p:close()
  return out, status
end

-- ---- the commit ----
local in_checkout = io.open(".git", "r") ~= nil
local describe = in_checkout and run("git describe --always --dirty --tags"):gsub("[^%w%._/+-]", "") or ""
local recorded = host.build().git
if describe == "" then
  T.eq(recorded, nil, "outside a git checkout (or without git): no commit recorded")
else
  T.eq(recorded, describe, "host.build().git is `git describe --always --dirty --tags` of this checkout")
  T.ok(recorded:match("^[%w%._/+-]+$"), "and holds only the characters of a tag or a hash")
end
local printed = run((os.getenv("FMNIST_HOST") or "./fmnist-lua")
  .. [[ -e 'print(require("fmnist.host").build().git)']])
T.eq(printed, (recorded or "nil") .. "\n", "the program prints it")

-- Recording it does not make the build out of date: with the commit unchanged, make has nothing
-- to do for host.o (a stamp rewritten only when the description changes, not a rule run every
-- time). Only host.o is asked about, so that an edit elsewhere during the run is no failure.
local sanitize = os.getenv("FMNIST_SANITIZE") or ""
local build = os.getenv("FMNIST_BUILD") or "build"
if run("command -v make") == "" then
  T.skip("make -q: the build is up to date", "make is not installed")
else
  local _, status = run("make -q SANITIZE=" .. sanitize .. " BUILD=" .. build .. " " .. build .. "/lua/host.o")
  T.eq(status, 0, "make -q " .. build .. "/lua/host.o: up to date after recording the commit")
end
local stamp = io.open(build .. "/git-describe.stamp", "r")
T.eq(stamp and stamp:read("a"), describe .. "\n", "the stamp holds the description")
if stamp then stamp:close() end

-- ---- fm.threads ----
T.eq(fm.threads(), host.build().threads, "fm.threads(): the threads training uses by default")
local one = run("OMP_NUM_THREADS=1 " .. (os.getenv("FMNIST_HOST") or "./fmnist-lua")
  .. [[ -e 'print(require("fmnist").threads())']])
T.eq(one, "1\n", "OMP_NUM_THREADS=1: one thread")

T.done()
