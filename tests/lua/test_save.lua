-- Every way to save a file from Lua (t:save_npy, t:save_png, model:save) goes through the engine's
-- fm_file: a symlink, a FIFO, a device node or a directory at the path is refused naming the path and
-- left alone, an existing file keeps its permission bits, and no temporary file is left behind.
local T = require "testlib"
local fm = require "fmnist"

local dir = T.tmpdir()
local function sh(cmd) assert(os.execute(cmd), cmd) end
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function mode(path)
  local p = io.popen("stat -c %a " .. q(path) .. " 2>/dev/null")
  local m = p:read("l")
  p:close()
  return m
end
local function kind(path)
  local p = io.popen("stat -c %F " .. q(path) .. " 2>/dev/null")
  local k = p:read("l")
  p:close()
  return k
end
local function leftovers()
  local p = io.popen("ls -A " .. q(dir))
  local names = {}
  for name in p:lines() do
    if name:find(".tmp", 1, true) then names[#names + 1] = name end
  end
  p:close()
  return table.concat(names, " ")
end

local t = fm.rand(4, 4)
local model = fm.LogReg{}
local savers = {
  {"save_npy", function(path) return t:save_npy(path) end},
  {"save_png", function(path) return t:save_png(path) end},
  {"model:save", function(path) return model:save(path) end},
}

for _, s in ipairs(savers) do
  local name, save = s[1], s[2]
  local base = dir .. "/" .. name:gsub("%W", "_")
  -- a symlink to a file: refused, and neither the link nor its target changes
  T.write(base .. ".target", "target")
  sh("ln -s " .. q(base .. ".target") .. " " .. q(base .. ".link"))
  T.err(base .. ".link: is a symbolic link; not replacing it", save, base .. ".link")
  T.ok(kind(base .. ".link") == "symbolic link" and T.read(base .. ".target") == "target",
       name .. ": the symlink and its target are left alone")
  -- a FIFO, /dev/null and a directory
  sh("mkfifo " .. q(base .. ".fifo"))
  T.err(base .. ".fifo: is a FIFO (named pipe), not a regular file", save, base .. ".fifo")
  T.eq(kind(base .. ".fifo"), "fifo", name .. ": the FIFO is still a FIFO")
  -- a device node: one of our own (made as root), never /dev/null itself, so that a broken save
  -- could only ever replace a node in the test's directory
  if os.execute("mknod " .. q(base .. ".null") .. " c 1 3 2>/dev/null") then
    T.err(base .. ".null: is a character device, not a regular file", save, base .. ".null")
    T.eq(kind(base .. ".null"), "character special file", name .. ": the device node is still one")
  else
    T.ok(true, "# SKIP only root can make a device node")
  end
  sh("mkdir " .. q(base .. ".dir"))
  T.err(base .. ".dir: is a directory, not a regular file", save, base .. ".dir")
  -- an existing private file stays private, an executable stays executable
  T.write(base .. ".private", "old")
  sh("chmod 600 " .. q(base .. ".private"))
  save(base .. ".private")
  T.eq(mode(base .. ".private"), "600", name .. ": a 0600 file stays 0600")
  T.ok(T.read(base .. ".private") ~= "old", name .. ": and was replaced")
  T.write(base .. ".exec", "old")
  sh("chmod 755 " .. q(base .. ".exec"))
  save(base .. ".exec")
  T.eq(mode(base .. ".exec"), "755", name .. ": a 0755 file stays 0755")
end
T.eq(leftovers(), "", "no temporary file is left behind")

-- Two equal trainings save the same bytes, whatever order their info fields were set in (the
-- fields are written sorted); only a field with a different value, such as a timing, differs.
do
  local x = fm.rand(40, 784)
  local y = {}
  for i = 1, 40 do y[i] = i % 10 end
  local ds = fm.dataset(x, y)
  local function trained(info_order)
    local m = fm.CNN{seed = 3, layers = {{"conv2d", 4, 3, bias = false}, "batchnorm", "relu",
                                         "flatten", {"dense", 10}}}
    m:fit(ds, {epochs = 2, batch = 8, seed = 3, verbose = false})
    for _, kv in ipairs(info_order) do m.info[kv[1]] = kv[2] end
    return m
  end
  local a = trained({{"notebook", "cnn"}, {"seed", "3"}, {"train_seconds", "1.5"}, {"quick", "no"}})
  local b = trained({{"quick", "no"}, {"train_seconds", "1.5"}, {"seed", "3"}, {"notebook", "cnn"}})
  a:save(dir .. "/same1.fmn")
  b:save(dir .. "/same2.fmn")
  local one, two = T.read(dir .. "/same1.fmn"), T.read(dir .. "/same2.fmn")
  T.ok(one and #one > 1000 and one == two, "equal trainings, info set in another order: the same bytes")
  b.info.train_seconds = "1.7"
  b:save(dir .. "/same3.fmn")
  local three = T.read(dir .. "/same3.fmn")
  T.ok(three and #three == #one and three ~= one, "another training time: the same size, other bytes")
end
T.done()
