-- Out of memory, for real: the host runs under an address-space limit (ulimit -v) a little above
-- what it needs to start, so that the training set (45 MB) and a 4 GB tensor cannot be allocated.
-- Each failure must be a Lua error naming what was being allocated, the session must go on
-- working after it, and the process must exit by itself with the usual status.
--
-- OpenBLAS 0.3.21 (Debian's) starts a worker thread when the library is loaded, before any of
-- this project's code runs, and that thread retries its 128 MB buffer allocation forever under
-- such a limit; exit() then waits for it. The host therefore restarts itself with
-- OPENBLAS_NUM_THREADS=1 under a limit; the last checks run the issue's own case without it.
local T = require "testlib"

local host = os.getenv("FMNIST_HOST") or "./fmnist-lua"

if os.getenv("FMNIST_SANITIZE") == "1" then
  print("ok 1 # SKIP ulimit -v cannot apply to an AddressSanitizer build (its shadow memory reserves "
        .. "terabytes of address space)")
  print("1..1")
  return
end

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Runs code in the host under `ulimit -v kb` (no limit when kb is nil); returns its output and
-- exit status. `timeout` only guards the suite against a hang: no time is measured.
local function run(code, kb, env)
  local limit = kb and ("ulimit -v " .. kb .. " && ") or ""
  local cmd = ("sh -c %s 2>&1; echo \"status=$?\""):format(sh_quote(limit
      .. (env or "OPENBLAS_NUM_THREADS=1") .. " exec timeout 300 " .. sh_quote(host) .. " -e "
      .. sh_quote(code)))
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  local status = tonumber(out:match("status=(%d+)%s*$"))
  return out:gsub("status=%d+%s*$", ""), status
end

-- What the host's address space is once the module is loaded, in KB.
local out = run([[local fm = require "fmnist"
for line in io.lines("/proc/self/status") do
  local kb = line:match("^VmSize:%s*(%d+)")
  if kb then print("vmsize=" .. kb) end
end]])
local base = tonumber(out:match("vmsize=(%d+)"))
T.ok(base, "the host reports its address space: " .. out)
local limit = (base or 60000) + 20000

local have_train = io.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
  or os.getenv("FMNIST_DATA")
if have_train then
  if type(have_train) == "userdata" then have_train:close() end
  out, status = run([[local fm = require "fmnist"; fm.load("train")]], limit)
  T.ok(out:find("load: out of memory for the 60000 images of ", 1, true),
       "fm.load('train') fails naming what it was allocating: " .. out:match("[^\n]*"))
  T.eq(status, 1, "and the host exits with status 1")
  out, status = run([[local fm = require "fmnist"
local ok, err = pcall(fm.load, "train")
print(ok, #fm.load("test"), fm.zeros(3, 3):sum())]], limit)
  T.eq(out, "false\t10000\t0.0\n", "after the failure the session goes on: the test set loads")
  T.eq(status, 0, "and the host exits with status 0")
else
  T.ok(true, "# SKIP the Fashion-MNIST training set is not installed")
end

out, status = run([[local fm = require "fmnist"; fm.zeros(100000, 10000)]], limit)
T.ok(out:find("zeros: out of memory for a 100000x10000 tensor (3814.7 MB)", 1, true),
     "a 4 GB tensor fails naming its shape: " .. out:match("[^\n]*"))
T.eq(status, 1, "and the host exits with status 1")
out, status = run([[local fm = require "fmnist"
local x = fm.ones(1000, 784)
print(pcall(x.reshape, x, 1 << 40, -1))
print(pcall(fm.rand, 50000, 784))
print((x * 2):sum())]], limit)
T.ok(out:find("out of memory for a 50000x784 tensor (149.5 MB)", 1, true) and out:find("1568000", 1, true),
     "a failed fm.rand leaves the session working: " .. out:gsub("\n", " | "))
T.eq(status, 0, "and the host exits with status 0")

-- The reported case, without OPENBLAS_NUM_THREADS in the environment: ulimit -v 150000, then the
-- training set. Before, the load worked and the process never ended (timeout's 124 here).
if have_train then
  out, status = run([[local fm = require "fmnist"; print(#fm.load("train"))]], 150000,
                    "unset OPENBLAS_NUM_THREADS;")
  T.ok(status == 0 and out == "60000\n", "ulimit -v 150000: the training set loads and the host "
       .. "exits by itself (status " .. tostring(status) .. ", " .. out:match("[^\n]*") .. ")")
  out, status = run([[local fm = require "fmnist"; print(#fm.load("train"))]], 90000,
                    "unset OPENBLAS_NUM_THREADS;")
  T.ok(status == 1 and out:find("load: out of memory for the 60000 images", 1, true),
       "ulimit -v 90000: out of memory, named, and the host exits with status 1 (" ..
       tostring(status) .. ")")
end
T.done()
