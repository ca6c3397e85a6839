-- fmnist.capture: keeps what a piece of code prints, for the cells of a report.
--
--   capture.start([echo])   from now on output is kept (and still shown when echo is true)
--   capture.take()          the text kept since start or the last take
--   capture.stop()          the rest of the text; output goes where it went before
--   capture.level()         "all" (the file descriptors: print, io.write, C code's stdout and
--                           stderr such as fit's progress lines, child processes) or "lua" (print
--                           and io.write only: under a stock lua5.4, which lacks fmnist.host)
--
-- Inside fmnist-lua the program's fmnist.host moves file descriptors 1 and 2 onto a pipe read by a
-- thread (see lua/host.c), so the order of stdout and stderr is the order they were written. print
-- flushes stdout after each call; io.write is made to while capturing, so that C code writing to
-- stderr in between keeps its place.
local M = {}

local ok_host, host = pcall(require, "fmnist.host")
if not ok_host or type(host) ~= "table" or not host.capture_start then host = nil end

local active = false
local echo_on = false
local kept = {}               -- Lua-level fallback: pieces printed since the last take
local saved_print, saved_write

function M.level() return host and "all" or "lua" end

-- io.write that flushes: with stdout a pipe, stdio would hold the text back past what C code
-- writes to stderr meanwhile.
local function flushing_write(...)
  local r = table.pack(saved_write(...))
  io.stdout:flush()
  return table.unpack(r, 1, r.n)
end

-- Under a stock lua5.4: print and io.write are replaced by versions that keep what they write.
local function keeping_print(...)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
  local line = table.concat(parts, "\t") .. "\n"
  kept[#kept + 1] = line
  if echo_on then saved_write(line) end
end

local function keeping_write(...)
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    kept[#kept + 1] = type(v) == "number" and tostring(v) or v
  end
  if echo_on then return saved_write(...) end
  return io.stdout
end

function M.start(echo)
  if active then error("capture.start: already capturing", 2) end
  echo_on = echo and true or false
  saved_print, saved_write = print, io.write
  if host then
    host.capture_start(echo_on)
    io.write = flushing_write
  else
    kept = {}
    print, io.write = keeping_print, keeping_write
  end
  active = true
end

function M.take()
  if not active then error("capture.take: not capturing", 2) end
  if host then return host.capture_take() end
  local text = table.concat(kept)
  kept = {}
  return text
end

function M.stop()
  if not active then return "" end
  active = false
  print, io.write = saved_print, saved_write
  if host then return host.capture_stop() end
  local text = table.concat(kept)
  kept = {}
  return text
end

function M.active() return active end

return M
