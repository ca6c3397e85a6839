-- fmnist.termimage (fm.termimage): images and matrices drawn in a plain terminal.
--
--   termimage.image(t [, opts]) -> string     one image as Unicode upper-half blocks (▀): each
--                                             character is two pixels, the top one its
--                                             foreground colour, the bottom one its background
--   termimage.images(list [, opts]) -> string images side by side with a caption under each
--   termimage.heatmap(m [, opts]) -> string   a matrix as coloured cells with its values and
--                                             row and column labels
--   termimage.sixel(t [, opts]) -> string     one image as sixel graphics
--   termimage.show(x [, opts])                writes an image (a tensor) or a grid (a list) to
--                                             stdout: sixel when asked for (opts.sixel or
--                                             FMNIST_PLOT=sixel) and the terminal says it can,
--                                             else blocks; says so on stderr when sixel was asked
--                                             for and the terminal cannot
--   termimage.colors() -> "24bit" | "256" | "none"
--   termimage.columns() -> the terminal's width in characters (COLUMNS, else 80, without one)
--   termimage.sixel_supported() -> boolean    the terminal's answer to ESC [ c (DA1) lists 4
--   termimage.sixel_wanted(requested) -> boolean   sixel when requested and supported; else a
--                                             word on stderr (once) and false (fm.plot asks too)
--
-- Colours: 24-bit when COLORTERM is truecolor or 24bit, else the 256-colour palette, and none
-- (characters of growing ink " .:-=+*#%@") when NO_COLOR is set or TERM is dumb; opts.colors
-- chooses. Values map to colours through a palette of fm.plot's (gray, gray_r, magma, viridis,
-- blues, diverging) over opts.range ({0, 1} when the values fit, else their own); NaN is left blank.
-- Sixel is never sent to a terminal that did not say it shows it: it would print garbage.
local M = {}

local TENSOR = "fmnist.Tensor"

local check = require "fmnist.check"
local function fail(fname, fmt, ...) error("termimage." .. fname .. ": " .. fmt:format(...), 3) end

local function is_tensor(v)
  local mt = getmetatable(v)
  return type(v) == "userdata" and type(mt) == "table" and mt.__name == TENSOR
end

-- The palettes are fm.plot's (plot.PALETTES: stops {position, "#rrggbb"}), so that a figure and
-- its drawing in the terminal have the same colours.
local PALETTES = require("fmnist.plot").PALETTES

local RAMP = " .:-=+*#%@"

local KNOWN = { palette = true, range = true, colors = true, scale = true, width = true,
  captions = true, cols = true, labels = true, row_labels = true, col_labels = true,
  digits = true, sixel = true }

-- (option tables are checked by fmnist.check; fname carries the module's prefix)
local function check_opts(fname, opts, allowed)
  return check.options("termimage." .. fname, opts, allowed)
end

local function subset(keys)
  local t = {}
  for _, k in ipairs(keys) do
    assert(KNOWN[k])
    t[k] = true
  end
  return t
end

-- The rows of a 2-D tensor (or a 1-D one of square length) as Lua lists.
local function as_rows(fname, t, what)
  if not is_tensor(t) then fail(fname, "%s must be a tensor, got %s", what, type(t)) end
  if t:dim() == 2 then return t:totable() end
  local n = t:numel()
  local side = math.tointeger(math.floor(math.sqrt(n) + 0.5))
  if t:dim() == 1 and side and side * side == n and n > 0 then return t:reshape(side, side):totable() end
  fail(fname, "%s must be a 2-D tensor or a 1-D one of square length", what)
end

-- The range of the colour scale: opts.range, else [0, 1] when every value fits, else their own.
local function value_range(fname, opts, lists)
  if opts.range ~= nil then
    local r = opts.range
    if type(r) ~= "table" or type(r[1]) ~= "number" or type(r[2]) ~= "number" or not (r[1] < r[2]) then
      fail(fname, "option 'range' must be {low, high} with low < high")
    end
    return r[1], r[2]
  end
  local lo, hi = math.huge, -math.huge
  for _, rows in ipairs(lists) do
    for _, row in ipairs(rows) do
      for _, v in ipairs(row) do
        if v == v then lo, hi = math.min(lo, v), math.max(hi, v) end
      end
    end
  end
  if lo == math.huge then return 0, 1 end
  if lo >= 0 and hi <= 1 then return 0, 1 end
  if lo == hi then return lo - 0.5, hi + 0.5 end
  return lo, hi
end

-- The stops of the palette opts.palette (default gray) as {position, r, g, b} (0..255). The
-- palettes can be changed from Lua, so they are checked as they are read.
local function palette_of(fname, opts)
  local name = opts.palette or "gray"
  local p = type(name) == "string" and rawget(PALETTES, name)
  if not p then
    local names = {}
    for k in next, PALETTES do names[#names + 1] = tostring(k) end
    table.sort(names)
    fail(fname, "unknown palette '%s' (known: %s)", tostring(name), table.concat(names, ", "))
  end
  local stops = type(p) == "table" and type(rawget(p, "stops")) == "table" and rawget(p, "stops")
  local out = {}
  for i = 1, stops and rawlen(stops) or 0 do
    local stop = rawget(stops, i)
    local pos = type(stop) == "table" and rawget(stop, 1)
    local hex = type(stop) == "table" and rawget(stop, 2)
    hex = type(hex) == "string" and hex:match("^#(%x%x%x%x%x%x)$")
    if type(pos) ~= "number" or not (pos >= 0 and pos <= 1) or not hex then
      fail(fname, "palette '%s': stop %d is not {position in [0, 1], \"#rrggbb\"}", name, i)
    end
    out[i] = { pos, tonumber(hex:sub(1, 2), 16), tonumber(hex:sub(3, 4), 16),
      tonumber(hex:sub(5, 6), 16) }
  end
  if #out < 2 then fail(fname, "palette '%s' needs at least two stops", name) end
  return out
end

-- r, g, b (0..255) of a value through a palette over [lo, hi]; nil for NaN.
local function colour(p, lo, hi, v)
  if v ~= v then return nil end
  local z = (v - lo) / (hi - lo)
  -- NaN too (a range so wide that hi - lo overflows) becomes 0
  if not (z >= 0) then z = 0 elseif z > 1 then z = 1 end
  for i = 2, #p do
    if z <= p[i][1] or i == #p then
      local a, b = p[i - 1], p[i]
      local f = (b[1] > a[1]) and (z - a[1]) / (b[1] - a[1]) or 0
      return math.floor(a[2] + f * (b[2] - a[2]) + 0.5), math.floor(a[3] + f * (b[3] - a[3]) + 0.5),
        math.floor(a[4] + f * (b[4] - a[4]) + 0.5)
    end
  end
end
M.colour = function(palette, lo, hi, v) return colour(palette_of("colour", { palette = palette }), lo, hi, v) end

-- The nearest colour of the 256-colour palette: the 6x6x6 cube or the 24 greys.
local CUBE = { 0, 95, 135, 175, 215, 255 }
local function nearest_cube(c)
  local best, bi = math.huge, 0
  for i, v in ipairs(CUBE) do
    local d = math.abs(v - c)
    if d < best then best, bi = d, i - 1 end
  end
  return bi
end
local function xterm256(r, g, b)
  local ri, gi, bi = nearest_cube(r), nearest_cube(g), nearest_cube(b)
  local cube = 16 + 36 * ri + 6 * gi + bi
  local cd = (CUBE[ri + 1] - r) ^ 2 + (CUBE[gi + 1] - g) ^ 2 + (CUBE[bi + 1] - b) ^ 2
  local grey = (r + g + b) / 3
  local gidx = math.max(0, math.min(23, math.floor((grey - 8) / 10 + 0.5)))
  local gv = 8 + 10 * gidx
  local gd = (gv - r) ^ 2 + (gv - g) ^ 2 + (gv - b) ^ 2
  return gd < cd and (232 + gidx) or cube
end
M.xterm256 = xterm256

function M.colors()
  local nc = os.getenv("NO_COLOR")
  local term = os.getenv("TERM") or ""
  if (nc and nc ~= "") or term == "dumb" then return "none" end
  local ct = (os.getenv("COLORTERM") or ""):lower()
  if ct == "truecolor" or ct == "24bit" then return "24bit" end
  return "256"
end

local function colors_of(fname, opts)
  local c = opts.colors or M.colors()
  if c ~= "24bit" and c ~= "256" and c ~= "none" then
    fail(fname, "option 'colors' must be \"24bit\", \"256\" or \"none\", not %s", tostring(c))
  end
  return c
end

-- The escape setting the foreground (fg = true) or background to r, g, b (nil: the default).
local function sgr(mode, fg, r, g, b)
  if r == nil then return fg and "\27[39m" or "\27[49m" end
  if mode == "24bit" then return ("\27[%d;2;%d;%d;%dm"):format(fg and 38 or 48, r, g, b) end
  return ("\27[%d;5;%dm"):format(fg and 38 or 48, xterm256(r, g, b))
end

-- The columns of the terminal: its size, else COLUMNS, else 80.
local function terminal_columns()
  local ok, host = pcall(require, "fmnist.host")
  local cols = ok and host.terminal_size and host.terminal_size()
  local env = math.tointeger(tonumber(os.getenv("COLUMNS") or ""))
  return cols or (env and env >= 1 and env) or 80
end
M.columns = terminal_columns

-- Each pixel repeated scale x scale.
local function scaled(rows, scale)
  if scale == 1 then return rows end
  local out = {}
  for _, row in ipairs(rows) do
    local line = {}
    for _, v in ipairs(row) do
      for _ = 1, scale do line[#line + 1] = v end
    end
    for _ = 1, scale do out[#out + 1] = line end
  end
  return out
end

-- The text lines of one image (rows of values) in a mode.
local function block_lines(rows, p, lo, hi, mode)
  local lines = {}
  local h, w = #rows, #rows[1]
  for y = 1, h, 2 do
    local top, bottom = rows[y], rows[y + 1]
    local parts = {}
    local last_fg, last_bg = nil, nil
    for x = 1, w do
      if mode == "none" then
        local a, b = top[x], bottom and bottom[x]
        local vals = {}
        if a == a then vals[#vals + 1] = a end
        if b ~= nil and b == b then vals[#vals + 1] = b end
        if #vals == 0 then
          parts[x] = " "
        else
          -- ink for light: the mean luminance of the pixels' colours in the palette
          local z = 0
          for _, u in ipairs(vals) do
            local r, g, b = colour(p, lo, hi, u)
            z = z + (0.299 * r + 0.587 * g + 0.114 * b) / 255
          end
          z = z / #vals
          local i = math.floor(z * (#RAMP - 1) + 0.5) + 1
          parts[x] = RAMP:sub(i, i)
        end
      else
        local tr, tg, tb = colour(p, lo, hi, top[x])
        local br, bg, bb
        if bottom then br, bg, bb = colour(p, lo, hi, bottom[x]) end
        local fg_code, bg_code, char
        if tr == nil and br == nil then
          bg_code, char = sgr(mode, false), " "
        elseif tr == nil then
          -- only the bottom pixel: a lower half block in its colour
          fg_code, bg_code, char = sgr(mode, true, br, bg, bb), sgr(mode, false), "\u{2584}"
        else
          fg_code, bg_code, char = sgr(mode, true, tr, tg, tb), sgr(mode, false, br, bg, bb), "\u{2580}"
        end
        -- an escape only where the colour changes
        local cell = {}
        if fg_code and fg_code ~= last_fg then cell[#cell + 1] = fg_code; last_fg = fg_code end
        if bg_code ~= last_bg then cell[#cell + 1] = bg_code; last_bg = bg_code end
        cell[#cell + 1] = char
        parts[x] = table.concat(cell)
      end
    end
    lines[#lines + 1] = table.concat(parts) .. (mode == "none" and "" or "\27[0m")
  end
  return lines
end

-- A whole-number option from lo to hi, or nil when absent.
local function opt_int(fname, opts, key, lo, hi)
  local v = opts[key]
  if v == nil then return nil end
  if math.type(v) ~= "integer" and not (type(v) == "number" and math.tointeger(v)) then
    fail(fname, "option '%s' must be a whole number %d..%d, got %s", key, lo, hi, tostring(v))
  end
  v = math.tointeger(v)
  if v < lo or v > hi then
    fail(fname, "option '%s' must be a whole number %d..%d, got %d", key, lo, hi, v)
  end
  return v
end

-- The scale that makes an image of width w fit in `columns` (at most 2, at least 1).
local function fit_scale(opts, w, columns)
  if opts.scale ~= nil then
    if math.type(opts.scale) ~= "integer" or opts.scale < 1 or opts.scale > 16 then
      fail("image", "option 'scale' must be a whole number 1..16")
    end
    return opts.scale
  end
  return (2 * w <= columns) and 2 or 1
end

function M.image(t, opts)
  opts = check_opts("image", opts, subset { "palette", "range", "colors", "scale", "width" })
  local rows = as_rows("image", t, "image")
  local p = palette_of("image", opts)
  local lo, hi = value_range("image", opts, { rows })
  local mode = colors_of("image", opts)
  local scale = fit_scale(opts, #rows[1], opt_int("image", opts, "width", 1, 10000)
    or terminal_columns())
  return table.concat(block_lines(scaled(rows, scale), p, lo, hi, mode), "\n") .. "\n"
end

-- Display width of a string: characters, not bytes, escapes left out.
local function width_of(s)
  s = s:gsub("\27%[[%d;]*m", "")
  return utf8.len(s) or #s
end

-- The first `width` characters of s (bytes when it is not UTF-8).
local function cut(s, width)
  if width_of(s) <= width then return s end
  if not utf8.len(s) then return s:sub(1, width) end
  return s:sub(1, utf8.offset(s, width + 1) - 1)
end

function M.images(list, opts)
  opts = check_opts("images", opts, subset { "palette", "range", "colors", "scale", "width",
    "captions", "cols" })
  if type(list) ~= "table" or #list == 0 then fail("images", "a list of image tensors expected") end
  local all = {}
  for i, t in ipairs(list) do all[i] = as_rows("images", t, "image " .. i) end
  local h, w = #all[1], #all[1][1]
  for i, rows in ipairs(all) do
    if #rows ~= h or #rows[1] ~= w then
      fail("images", "image %d is %dx%d, image 1 is %dx%d", i, #rows, #rows[1], h, w)
    end
  end
  local captions = opts.captions
  if captions ~= nil and (type(captions) ~= "table" or #captions ~= #list) then
    fail("images", "option 'captions' must be a list of %d strings", #list)
  end
  local p = palette_of("images", opts)
  local lo, hi = value_range("images", opts, all)
  local mode = colors_of("images", opts)
  local columns = opt_int("images", opts, "width", 1, 10000) or terminal_columns()
  local scale = opts.scale and fit_scale(opts, w, columns) or 1
  local cell = w * scale
  local cols = opt_int("images", opts, "cols", 1, 10000)
    or math.max(1, math.min(#list, (columns + 1) // (cell + 1)))
  local out = {}
  for first = 1, #list, cols do
    local blocks = {}
    for i = first, math.min(#list, first + cols - 1) do
      blocks[#blocks + 1] = block_lines(scaled(all[i], scale), p, lo, hi, mode)
    end
    for line = 1, #blocks[1] do
      local parts = {}
      for b, lines in ipairs(blocks) do parts[b] = lines[line] end
      out[#out + 1] = table.concat(parts, " ")
    end
    if captions then
      -- a caption's lines under its image, each cut to the image's width
      local lines, count = {}, 1
      for i = first, math.min(#list, first + cols - 1) do
        local list_i = {}
        for line in (tostring(captions[i]) .. "\n"):gmatch("([^\n]*)\n") do
          list_i[#list_i + 1] = cut(line, cell)
        end
        lines[#lines + 1] = list_i
        count = math.max(count, #list_i)
      end
      for k = 1, count do
        local parts = {}
        for b, list_i in ipairs(lines) do
          local c = list_i[k] or ""
          parts[b] = c .. (" "):rep(cell - width_of(c))
        end
        out[#out + 1] = (table.concat(parts, " "):gsub("%s+$", ""))
      end
    end
  end
  return table.concat(out, "\n") .. "\n"
end

-- A matrix as coloured cells, its values written in them, labels on the rows and above the
-- columns (numbers, or the first letters of names, with the names listed under).
function M.heatmap(m, opts)
  opts = check_opts("heatmap", opts, subset { "palette", "range", "colors", "labels", "row_labels",
    "col_labels", "digits" })
  if not is_tensor(m) or m:dim() ~= 2 then fail("heatmap", "a 2-D tensor expected") end
  local rows = m:totable()
  local nr, nc = #rows, #rows[1]
  local row_names = opts.row_labels or opts.labels
  local col_names = opts.col_labels or opts.labels
  for _, names in ipairs { { row_names, nr, "row" }, { col_names, nc, "column" } } do
    if names[1] ~= nil and (type(names[1]) ~= "table" or #names[1] ~= names[2]) then
      fail("heatmap", "%d %s labels expected", names[2], names[3])
    end
  end
  local p = palette_of("heatmap", { palette = opts.palette or "blues" })
  local lo, hi = value_range("heatmap", { range = opts.range }, { rows })
  if opts.range == nil then
    lo, hi = math.huge, -math.huge
    for _, row in ipairs(rows) do
      for _, v in ipairs(row) do lo, hi = math.min(lo, v), math.max(hi, v) end
    end
    if lo == hi then lo, hi = lo - 0.5, hi + 0.5 end
  end
  local mode = colors_of("heatmap", opts)
  local integers = true
  for _, row in ipairs(rows) do
    for _, v in ipairs(row) do integers = integers and v == math.floor(v) end
  end
  local digits = opt_int("heatmap", opts, "digits", 0, 10)
  local fmt = digits and ("%." .. digits .. "f") or (integers and "%.0f" or "%.2f")
  local cw = 1
  for _, row in ipairs(rows) do
    for _, v in ipairs(row) do cw = math.max(cw, #fmt:format(v)) end
  end
  cw = cw + 2
  local lw = 0
  for i = 1, nr do lw = math.max(lw, width_of(row_names and row_names[i] or tostring(i))) end
  local out = {}
  local head = { (" "):rep(lw) }
  for j = 1, nc do
    local name = col_names and tostring(j - 1) or tostring(j)
    head[#head + 1] = (" "):rep(cw - #name - 1) .. name .. " "
  end
  out[1] = (table.concat(head, " "):gsub("%s+$", ""))
  for i = 1, nr do
    local name = row_names and row_names[i] or tostring(i)
    local parts = { (" "):rep(lw - width_of(name)) .. name }
    for j = 1, nc do
      local v = rows[i][j]
      local text = fmt:format(v)
      text = (" "):rep(cw - #text - 1) .. text .. " "
      if mode == "none" then
        parts[#parts + 1] = text
      else
        local r, g, b = colour(p, lo, hi, v)
        -- dark text on light cells, light text on dark ones
        local light = r and (0.299 * r + 0.587 * g + 0.114 * b) > 140
        parts[#parts + 1] = sgr(mode, false, r, g, b) .. (light and "\27[30m" or "\27[97m") .. text .. "\27[0m"
      end
    end
    out[#out + 1] = table.concat(parts, " ")
  end
  if col_names then
    local names = {}
    for j = 1, nc do names[j] = ("%d %s"):format(j - 1, col_names[j]) end
    out[#out + 1] = "columns: " .. table.concat(names, ", ")
  end
  return table.concat(out, "\n") .. "\n"
end

-- ---- sixel ----

local cached_support = nil

-- Whether the terminal shows sixel graphics: its answer to the primary device attributes query
-- (ESC [ c) lists attribute 4. Asked once, only when stdout is a terminal, through the program.
function M.sixel_supported()
  if cached_support ~= nil then return cached_support end
  cached_support = false
  local ok, host = pcall(require, "fmnist.host")
  if not ok or not host.terminal_query or not host.isatty(1) then return false end
  local answer = host.terminal_query("\27[c", "c", 0.5)
  local params = answer and answer:match("\27%[%?([%d;]*)c")
  if params then
    for p in params:gmatch("%d+") do
      if p == "4" then cached_support = true end
    end
  end
  return cached_support
end

-- Only for the tests: what the terminal answered, as if asked.
function M._set_sixel_support(v) cached_support = v end

-- One image as sixel: a palette of the colours used (at most 256, in %), six rows a band, one
-- run of each colour per band, runs of the same character compressed (!n).
function M.sixel(t, opts)
  opts = check_opts("sixel", opts, subset { "palette", "range", "scale" })
  local rows = as_rows("sixel", t, "image")
  local p = palette_of("sixel", opts)
  local lo, hi = value_range("sixel", opts, { rows })
  local scale = opts.scale or 4
  if math.type(scale) ~= "integer" or scale < 1 or scale > 16 then
    fail("sixel", "option 'scale' must be a whole number 1..16")
  end
  local px = scaled(rows, scale)
  local h, w = #px, #px[1]
  -- Colours: quantised to 64 levels of the palette (enough for 8-bit images drawn this size).
  local index, defs = {}, {}
  local levels = 64
  local grid = {}
  for y = 1, h do
    local line = {}
    for x = 1, w do
      local v = px[y][x]
      if v ~= v then
        line[x] = 0
      else
        local z = (v - lo) / (hi - lo)
        z = z < 0 and 0 or (z > 1 and 1 or z)
        local q = math.floor(z * (levels - 1) + 0.5)
        if not index[q] then
          local r, g, b = colour(p, 0, levels - 1, q)
          defs[#defs + 1] = ("#%d;2;%d;%d;%d"):format(#defs + 1, math.floor(r * 100 / 255 + 0.5),
            math.floor(g * 100 / 255 + 0.5), math.floor(b * 100 / 255 + 0.5))
          index[q] = #defs
        end
        line[x] = index[q]
      end
    end
    grid[y] = line
  end
  local out = { "\27P0;1;0q", ('"1;1;%d;%d'):format(w, h), table.concat(defs) }
  for band = 0, (h - 1) // 6 do
    local used = {}
    local order = {}
    for dy = 0, 5 do
      local line = grid[band * 6 + dy + 1]
      if line then
        for x = 1, w do
          local c = line[x]
          if c > 0 and not used[c] then
            used[c] = true
            order[#order + 1] = c
          end
        end
      end
    end
    table.sort(order)
    local parts = {}
    for k, c in ipairs(order) do
      local chars = {}
      for x = 1, w do
        local bits = 0
        for dy = 0, 5 do
          local line = grid[band * 6 + dy + 1]
          if line and line[x] == c then bits = bits | (1 << dy) end
        end
        chars[x] = string.char(63 + bits)
      end
      -- runs of one character: !n<char>
      local s, x = {}, 1
      while x <= w do
        local ch, n = chars[x], 1
        while x + n <= w and chars[x + n] == ch do n = n + 1 end
        s[#s + 1] = n > 3 and ("!%d%s"):format(n, ch) or ch:rep(n)
        x = x + n
      end
      parts[#parts + 1] = "#" .. c .. table.concat(s) .. (k < #order and "$" or "")
    end
    out[#out + 1] = table.concat(parts) .. "-"
  end
  out[#out + 1] = "\27\\"
  return table.concat(out)
end

-- ---- show ----

local warned = false

-- Whether to draw with sixel when it was asked for (requested true: opts.sixel or
-- FMNIST_PLOT=sixel): only when the terminal says it shows sixel; else false, and the first time
-- a word on stderr saying why (a terminal without sixel would show nothing, or garbage).
function M.sixel_wanted(requested)
  if not requested then return false end
  if M.sixel_supported() then return true end
  if not warned then
    warned = true
    io.stderr:write("FMNIST_PLOT=sixel: this terminal does not say it shows sixel graphics (its "
      .. "answer to ESC [ c has no 4); drawing as text instead\n")
    io.stderr:flush()
  end
  return false
end

function M.show(x, opts)
  opts = opts or {}
  if type(opts) ~= "table" then fail("show", "options must be a table, got %s", type(opts)) end
  local want_sixel = opts.sixel
  if want_sixel == nil then want_sixel = os.getenv("FMNIST_PLOT") == "sixel" end
  local rest = {}
  for k, v in pairs(opts) do
    if k ~= "sixel" then rest[k] = v end
  end
  if is_tensor(x) and M.sixel_wanted(want_sixel) then
    local so = {}
    for _, k in ipairs { "palette", "range", "scale" } do so[k] = rest[k] end
    io.stdout:write(M.sixel(x, so), "\n")
    io.stdout:flush()
    return
  end
  if is_tensor(x) then
    io.stdout:write(M.image(x, rest))
  else
    io.stdout:write(M.images(x, rest))
  end
  io.stdout:flush()
end

return M
