-- fmnist.plot (fm.plot): figures drawn by gnuplot.
--
--   fm.plot.bar(values, opts)        bars per category; several series side by side
--   fm.plot.hist(t, opts)            histogram of a tensor's values (bins, range, logy)
--   fm.plot.lines(series, opts)      named series over x (loss and accuracy per epoch); a series
--                                    may be drawn as lines, points or both (style)
--   fm.plot.scatter(x, y, opts)      points, coloured by group (groups, labels); logx, logy, and
--                                    categories naming x = 1, 2, ...
--   fm.plot.heatmap(m, opts)         a matrix with row/column labels, values in cells, colour scale
--   fm.plot.image(t, opts)           one grayscale image
--   fm.plot.images(list, opts)       a grid of images with a caption under each (captions may
--                                    have several lines; colorbox, cblabel for a colour scale)
--   fm.plot.close()                  ends the gnuplot process now (it also ends with the program)
--   fm.plot.PALETTES                 the palettes, as data (fm.termimage draws with them too)
--
-- Series (bar, lines) are given as a tensor or list of numbers (one series), a list of series
-- {{name = "train", values = t1}, {name = "test", values = t2}}, or a table of named series
-- {train = t1, test = t2} (drawn in name order).
--
-- Options shared by every figure: title, xlabel, ylabel, palette, size = {width, height}, file.
-- The extension of file picks the terminal: .png (pngcairo), .svg, .pdf (pdfcairo), .txt (dumb
-- text). Each figure returns the path of its file. Without file the figure is drawn on standard
-- output: sixel graphics when FMNIST_PLOT=sixel and the terminal says it shows them, else text —
-- gnuplot's dumb terminal for bars, histograms, lines and points, fm.termimage (colour half
-- blocks) for images, grids and heatmaps, which the dumb terminal cannot draw.
--
-- Axes are set here rather than left to gnuplot's autoscale where it misleads: whole-number x
-- (epochs) runs from the first to the last value with a small margin and whole-number tics;
-- a flat range (one point, one value) gets a range around it; scatter pads x by 5%. Titles
-- wider than the figure are broken into lines. SVG draws images pixel by pixel (crisp when
-- scaled) up to SVG_PIXELS_MAX pixels.
--
-- Every string a user gives is text, drawn exactly as given:
--   * it reaches gnuplot only through fm.gnuplot.quote, which leaves nothing gnuplot could run;
--   * tic labels, which gnuplot reads as formats, are quoted as formats ('%' doubled: QF below);
--   * every terminal is noenhanced and every command that carries text says noenhanced, so
--     ^ _ @ { } & are characters, not markup;
--   * file names never reach gnuplot at all (fm.gnuplot.run draws into a private file and copies
--     it to the name given, whole or not at all).
-- Numbers are formatted here; palettes are checked as they are read (PALETTES can be changed). Lists given by the user are
-- read raw (their metatables are not consulted); option tables through their __index.
local fm = require "fmnist"
local gp = fm.gnuplot
local Q = gp.quote
local function QF(s) return gp.quote(s, "format") end

local M = {}

local TENSOR_MT = getmetatable(fm.zeros(1))
-- The largest figure drawn, in pixels a side (characters for text: TEXT_MAX).
local MAX_PIXELS = 20000
local TEXT_MAX = { 2000, 1000 }
-- Series colours (the familiar ten of matplotlib), so that train/test look as people expect.
local COLOURS = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                  "#7f7f7f", "#bcbd22", "#17becf" }

-- Palettes: colour stops {position in [0, 1], "#rrggbb"}, and which end is dark (for the colour
-- of text written on cells). Exported as plot.PALETTES: fm.termimage draws with the same colours.
local PALETTES = {
  gray = { stops = { { 0, "#000000" }, { 1, "#ffffff" } }, dark = "low" },
  gray_r = { stops = { { 0, "#ffffff" }, { 1, "#000000" } }, dark = "high" },
  blues = { stops = { { 0, "#f7fbff" }, { 0.25, "#c6dbef" }, { 0.5, "#6baed6" },
                      { 0.75, "#2171b5" }, { 1, "#08306b" } }, dark = "high" },
  viridis = { stops = { { 0, "#440154" }, { 0.25, "#3b528b" }, { 0.5, "#21918c" },
                        { 0.75, "#5ec962" }, { 1, "#fde725" } }, dark = "low" },
  magma = { stops = { { 0, "#000004" }, { 0.25, "#51127c" }, { 0.5, "#b73779" },
                      { 0.75, "#fc8961" }, { 1, "#fcfdbf" } }, dark = "low" },
  diverging = { stops = { { 0, "#2166ac" }, { 0.25, "#92c5de" }, { 0.5, "#f7f7f7" },
                          { 0.75, "#f4a582" }, { 1, "#b2182b" } }, dark = "ends", symmetric = true },
}
PALETTES.binary = PALETTES.gray_r
PALETTES.rdbu = PALETTES.diverging
M.PALETTES = PALETTES

-- The figure functions leave the commands of their last gnuplot figure here (strings only, data
-- blocks left out), so that tests can read what was asked of gnuplot.
M._last_commands = nil

local COMMON = { title = true, xlabel = true, ylabel = true, size = true, file = true }

-- ---- checking arguments ----

local function fail(fname, fmt, ...)
  error(fname .. ": " .. string.format(fmt, ...), 0)
end

local function is_tensor(v)
  return type(v) == "userdata" and getmetatable(v) == TENSOR_MT
end

local function finite(v)
  return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge
end

-- The finite values of a tensor or list, their least and greatest (nil, nil when there is none).
local function finite_range(t, lo, hi)
  for _, v in ipairs(is_tensor(t) and t:totable() or t) do
    if finite(v) then
      lo = lo and math.min(lo, v) or v
      hi = hi and math.max(hi, v) or v
    end
  end
  return lo, hi
end

-- A user's list as a plain table of its raw items 1..n, and n (rawlen: no __len, no __index).
local function raw_list(v)
  local out, n = {}, rawlen(v)
  for i = 1, n do out[i] = rawget(v, i) end
  return out, n
end

-- Text for gnuplot: a string (or a number, as tostring makes it) without a zero byte, which
-- would end a gnuplot string early.
local function check_text(fname, v, what)
  if type(v) ~= "string" and type(v) ~= "number" then
    fail(fname, "%s must be a string, got %s", what, type(v))
  end
  v = tostring(v)
  if v:find("\0", 1, true) then fail(fname, "%s holds a zero byte", what) end
  return v
end

local function check_opts(fname, opts, allowed)
  return require("fmnist.check").options(fname, opts, allowed, COMMON)
end

local function opt_string(fname, opts, key)
  local v = opts[key]
  if v == nil then return nil end
  return check_text(fname, v, "option '" .. key .. "'")
end

local function opt_bool(fname, opts, key)
  local v = opts[key]
  if v ~= nil and type(v) ~= "boolean" then
    fail(fname, "option '%s' must be true or false, got %s", key, type(v))
  end
  return v
end

-- opts.range: {low, high}, finite, with low < high.
local function opt_range(fname, opts)
  local r = opts.range
  if type(r) ~= "table" or not finite(r[1]) or not finite(r[2]) or not (r[1] < r[2]) then
    fail(fname, "option 'range' must be {low, high}: finite numbers with low < high")
  end
  return r[1], r[2]
end

local function opt_int(fname, opts, key, default, lo, hi)
  local v = opts[key]
  if v == nil then return default end
  local i = math.tointeger(v)
  if type(v) ~= "number" or not i then
    fail(fname, "option '%s' must be an integer, got %s", key, tostring(v))
  end
  if i < lo or i > hi then fail(fname, "option '%s' must be %d..%d, got %d", key, lo, hi, i) end
  return i
end

local function opt_strings(fname, opts, key, n)
  local v = opts[key]
  if v == nil then return nil end
  if type(v) ~= "table" then fail(fname, "option '%s' must be a list of strings", key) end
  local out, count = raw_list(v)
  for i = 1, count do
    out[i] = check_text(fname, out[i], string.format("option '%s': item %d", key, i))
  end
  if n and count ~= n then fail(fname, "option '%s' has %d labels for %d items", key, count, n) end
  return out
end

-- A tensor from a tensor or a list of numbers.
local function as_tensor(fname, v, what)
  if is_tensor(v) then return v end
  if type(v) ~= "table" then
    fail(fname, "%s must be a tensor or a list of numbers, got %s", what, type(v))
  end
  local list, n = raw_list(v)
  for i = 1, n do
    if type(list[i]) ~= "number" then
      fail(fname, "%s: item %d is a %s (number expected)", what, i, type(list[i]))
    end
  end
  if #list == 0 then fail(fname, "%s is empty", what) end
  return fm.tensor(list)
end

-- The keys of a series table, and the styles a series of lines may have.
local SERIES_KEYS = { name = true, values = true, x = true, style = true }
local SERIES_STYLES = { lines = "lines", points = "points pt 7 ps 0.8",
  linespoints = "linespoints pt 7 ps 0.6" }

-- The series of bar and lines as a list of {name =, values = tensor, x = tensor|nil, style =}.
local function series_list(fname, values)
  local list = {}
  if is_tensor(values) then
    list[1] = { values = values }
  elseif type(values) ~= "table" then
    fail(fname, "values must be a tensor, a list of numbers or a table of series, got %s",
      type(values))
  elseif type(rawget(values, 1)) == "number" then
    list[1] = { values = as_tensor(fname, values, "values") }
  elseif rawget(values, 1) ~= nil then
    local items, count = raw_list(values)
    for i = 1, count do
      local s = items[i]
      local svalues = type(s) == "table" and rawget(s, "values")
      if is_tensor(s) or (type(s) == "table" and svalues == nil and type(rawget(s, 1)) == "number") then
        list[i] = { name = "series " .. i, values = as_tensor(fname, s, "series " .. i) }
      elseif type(s) == "table" and svalues ~= nil then
        for k in next, s do
          if not SERIES_KEYS[k] then
            fail(fname, "series %d: unknown key '%s' (known: name, style, values, x)", i,
              tostring(k))
          end
        end
        local name, x, style = rawget(s, "name"), rawget(s, "x"), rawget(s, "style")
        if style ~= nil and not SERIES_STYLES[style] then
          fail(fname, "series %d: style must be \"lines\", \"points\" or \"linespoints\", got %s",
            i, tostring(style))
        end
        list[i] = { name = name ~= nil and check_text(fname, name, "series " .. i .. ": name")
                      or ("series " .. i),
                    values = as_tensor(fname, svalues, "series " .. i),
                    x = x and as_tensor(fname, x, "series " .. i .. " x"), style = style }
      else
        fail(fname, "series %d must be a tensor or {name =, values =}", i)
      end
    end
  else
    local names = {}
    for k in next, values do
      if type(k) ~= "string" then fail(fname, "series names must be strings") end
      names[#names + 1] = check_text(fname, k, "a series name")
    end
    if #names == 0 then fail(fname, "no series given") end
    table.sort(names)
    for i, k in ipairs(names) do
      list[i] = { name = k, values = as_tensor(fname, rawget(values, k), "series '" .. k .. "'") }
    end
  end
  for i, s in ipairs(list) do
    if s.values:numel() == 0 then fail(fname, "series %d is empty", i) end
  end
  return list
end

-- A number as gnuplot reads it back exactly.
local function num(v)
  if v ~= v or v == math.huge or v == -math.huge then return "NaN" end
  if math.type(v) == "integer" then return string.format("%d", v) end
  return string.format("%.17g", v)
end

-- Characters of a string (bytes when it is not UTF-8).
local function text_len(s) return utf8.len(s) or #s end

-- The first n characters of s (bytes when it is not UTF-8).
local function text_prefix(s, n)
  if not utf8.len(s) then return s:sub(1, n) end
  local stop = utf8.offset(s, n + 1)
  return stop and s:sub(1, stop - 1) or s
end

-- Text in lines of at most `width` characters, broken at spaces; a longer word is broken where
-- the line ends. The text's own line breaks are kept.
local function wrap(text, width)
  local out = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local cur = nil
    for word in line:gmatch("%S+") do
      if cur and text_len(cur) + 1 + text_len(word) <= width then
        cur = cur .. " " .. word
      else
        if cur then out[#out + 1] = cur end
        while text_len(word) > width do
          out[#out + 1] = text_prefix(word, width)
          word = word:sub(#text_prefix(word, width) + 1)
        end
        cur = word
      end
    end
    out[#out + 1] = cur or ""
  end
  return out
end
-- For the tests, with its arguments checked (an internal caller always gives a width of 10 or
-- more; a width of 0 would never end).
function M._wrap(text, width)
  if type(text) ~= "string" then fail("plot._wrap", "text must be a string, got %s", type(text)) end
  if math.type(width) ~= "integer" or width < 1 then
    fail("plot._wrap", "width must be a whole number from 1, got %s", tostring(width))
  end
  return wrap(text, width)
end

-- Pixels a character of the title (13 points) takes, about: what wraps a title to a figure.
local TITLE_CHAR_PIXELS = 9

-- ---- the terminal and the figure ----

local EXTENSIONS = { png = "png", svg = "svg", pdf = "pdf", txt = "txt" }

-- opts.size as whole numbers, or nil.
local function opt_size(fname, opts)
  local size = opts.size
  if size == nil then return nil end
  local w = type(size) == "table" and type(size[1]) == "number" and math.tointeger(size[1])
  local h = type(size) == "table" and type(size[2]) == "number" and math.tointeger(size[2])
  if not (w and h and w >= 1 and h >= 1 and w <= MAX_PIXELS and h <= MAX_PIXELS) then
    fail(fname, "option 'size' must be {width, height}: whole numbers of pixels (characters "
      .. "for text) from 1 to %d", MAX_PIXELS)
  end
  return w, h
end

-- What a figure becomes, and its file: "png", "svg", "pdf" or "txt" from opts.file's extension;
-- without a file, "sixel" when FMNIST_PLOT=sixel and the terminal says it shows sixel graphics,
-- else "txt" on standard output (and, when sixel was asked for, a word on stderr saying why not,
-- once: fm.termimage asks the terminal).
local function output_kind(fname, opts)
  local file = opt_string(fname, opts, "file")
  if file then
    local ext = file:match("%.([%w]+)$")
    local kind = ext and EXTENSIONS[ext:lower()]
    if not kind then
      fail(fname, "cannot tell the kind of figure from the file name '%s' (use .png, .svg, .pdf "
        .. "or .txt)", file)
    end
    return kind, file
  end
  if os.getenv("FMNIST_PLOT") == "sixel" and require("fmnist.termimage").sixel_wanted(true) then
    return "sixel", nil
  end
  return "txt", nil
end

-- The `set terminal` argument for opts.file (or standard output) at a size in pixels.
local function terminal(fname, opts, width, height)
  local kind, file = output_kind(fname, opts)
  local w, h = opt_size(fname, opts)
  if w then width, height = w, h end
  local fontsize = opt_int(fname, opts, "fontsize", 11, 4, 72)
  local font = Q("Sans," .. fontsize)
  if kind ~= "txt" and (width > MAX_PIXELS or height > MAX_PIXELS) then
    fail(fname, "the figure would be %dx%d pixels, more than %d a side (fewer columns or a "
      .. "smaller cell make it smaller)", width, height, MAX_PIXELS)
  end
  if kind == "png" then
    return string.format("pngcairo size %d,%d noenhanced font %s", width, height, font), file, kind
  elseif kind == "svg" then
    return string.format("svg size %d,%d dynamic noenhanced font %s background %s", width,
      height, font, Q("white")), file, kind
  elseif kind == "pdf" then
    return string.format("pdfcairo size %.2fin,%.2fin noenhanced font %s", width / 100,
      height / 100, Q("Sans,10")), file, kind
  elseif kind == "sixel" then
    return string.format("sixelgd size %d,%d truecolor noenhanced font %s", width, height,
      Q("Sans,10")), nil, kind
  end
  -- Text: characters, not pixels.
  local cols, rows = 100, 30
  if w then cols, rows = w, h end
  if cols > TEXT_MAX[1] or rows > TEXT_MAX[2] then
    fail(fname, "a text figure of %dx%d characters is larger than %dx%d", cols, rows,
      TEXT_MAX[1], TEXT_MAX[2])
  end
  return string.format("dumb size %d,%d noenhanced", cols, rows), file, "txt"
end

-- Sends the figure and returns what the user gets: the file's path, or nothing after drawing
-- on standard output.
-- expected: warnings that are known and harmless for this figure (plain substrings).
local function draw(fname, opts, width, height, commands, expected)
  -- A title longer than the figure is wide goes on several lines; a figure of the default size
  -- grows by a line's height for each line more.
  local given_size = opt_size(fname, opts)
  for i, c in ipairs(commands) do
    if type(c) == "table" and c.title then
      local kind = output_kind(fname, opts)
      local chars = kind == "txt" and ((given_size or 100) - 4) or ((given_size or width) - 20)
        // TITLE_CHAR_PIXELS
      local lines = wrap(c.title, math.max(10, chars))
      if not given_size and kind ~= "txt" then height = height + 18 * (#lines - 1) end
      commands[i] = "set title " .. Q(table.concat(lines, "\n")) .. " font " .. Q(",13")
        .. " noenhanced"
    end
  end
  local term, file, kind = terminal(fname, opts, width, height)
  commands.terminal = term
  commands.output = file
  table.insert(commands, 1, "set encoding utf8")
  for i, c in ipairs(COLOURS) do
    table.insert(commands, 1 + i, string.format("set linetype %d lc rgb %s lw 2", i, Q(c)))
  end
  if kind == "txt" then
    -- Text has no colour: no colour box, and no grid dots over the plot (the last command is
    -- the plot itself).
    table.insert(commands, #commands, "unset colorbox; unset grid")
  end
  local record = {}
  for _, c in ipairs(commands) do
    if type(c) == "string" then record[#record + 1] = c end
  end
  M._last_commands = record
  local ok, result, warnings = pcall(gp.run, commands)
  if not ok then error(fname .. ": " .. tostring(result), 0) end
  if warnings then
    local left = {}
    for w in (warnings .. "; "):gmatch("(.-); ") do
      local known = false
      for _, e in ipairs(expected or {}) do known = known or w:find(e, 1, true) ~= nil end
      if not known then left[#left + 1] = w end
    end
    if #left > 0 then io.stderr:write(fname, ": gnuplot ", table.concat(left, "; "), "\n") end
  end
  if file then return result end
  io.stdout:write(result)
  io.stdout:flush()
  return nil
end

-- Title and axis labels, when given. The title goes in as {title = text}: draw breaks it into
-- lines that fit the figure once its size is known.
local function labels(fname, opts, cmds, defaults)
  defaults = defaults or {}
  local title = opt_string(fname, opts, "title") or defaults.title
  local xlabel = opt_string(fname, opts, "xlabel") or defaults.xlabel
  local ylabel = opt_string(fname, opts, "ylabel") or defaults.ylabel
  if title then cmds[#cmds + 1] = { title = title } end
  if xlabel then cmds[#cmds + 1] = "set xlabel " .. Q(xlabel) .. " noenhanced" end
  if ylabel then cmds[#cmds + 1] = "set ylabel " .. Q(ylabel) .. " noenhanced" end
end

-- The palette named by opts.palette, and the gnuplot command that sets it. PALETTES can be
-- changed from Lua (it is exported), so its stops are checked as they are used.
local function palette(fname, opts, default)
  local name = opts.palette or default
  local p = type(name) == "string" and rawget(PALETTES, name)
  if not p then
    local names = {}
    for k in next, PALETTES do names[#names + 1] = tostring(k) end
    table.sort(names)
    fail(fname, "unknown palette '%s' (known: %s)", tostring(name), table.concat(names, ", "))
  end
  local stops = type(p) == "table" and type(rawget(p, "stops")) == "table" and rawget(p, "stops")
  local parts, n = {}, stops and rawlen(stops) or 0
  for i = 1, n do
    local stop = rawget(stops, i)
    local pos = type(stop) == "table" and rawget(stop, 1)
    local colour = type(stop) == "table" and rawget(stop, 2)
    if not (finite(pos) and pos >= 0 and pos <= 1 and type(colour) == "string"
        and colour:match("^#%x%x%x%x%x%x$")) then
      fail(fname, "palette '%s': stop %d is not {position in [0, 1], \"#rrggbb\"}", name, i)
    end
    parts[i] = num(pos) .. " " .. Q(colour)
  end
  if n < 2 then fail(fname, "palette '%s' needs at least two stops", name) end
  return p, "set palette defined (" .. table.concat(parts, ", ") .. ")"
end

-- `set xtics (...)` placing text labels at 0, 1, 2, ... (or at the given positions). gnuplot
-- reads these labels as formats: QF makes "50% off" and "%s" print as they are.
local function tics(axis, names, positions, extra)
  local parts = {}
  for i, name in ipairs(names) do
    parts[i] = QF(name) .. " " .. num(positions and positions[i] or (i - 1))
  end
  return string.format("set %s (%s)%s noenhanced", axis, table.concat(parts, ", "), extra or "")
end

-- 1-based row or column numbers: all of them for a small matrix, else 1 and every fifth.
local function index_tics(axis, n)
  local names, positions = {}, {}
  for i = 1, n do
    if n <= 12 or i == 1 or i % 5 == 0 then
      names[#names + 1] = tostring(i)
      positions[#positions + 1] = i - 1
    end
  end
  return tics(axis, names, positions)
end

-- Long category names are turned so that they do not overlap.
local function xtics_rotation(names, width)
  local chars = 0
  for _, n in ipairs(names) do chars = math.max(chars, #n) end
  -- Turned about their right end, which stays under the tic: each name ends under its bar.
  if (chars + 1) * 7 * #names > width * 0.8 then return " rotate by 30 right offset 0.6,-0.3" end
  return ""
end

-- ---- bar ----

function M.bar(values, opts)
  local fname = "plot.bar"
  opts = check_opts(fname, opts, { labels = true, logy = true, values = true, fontsize = true })
  opt_bool(fname, opts, "logy")
  opt_bool(fname, opts, "values")
  local list = series_list(fname, values)
  local n = list[1].values:numel()
  for i, s in ipairs(list) do
    if s.values:numel() ~= n then
      fail(fname, "series %d has %d values, series 1 has %d", i, s.values:numel(), n)
    end
  end
  -- A NaN is a missing bar; gnuplot refuses a figure with none at all.
  local lo = nil
  for _, s in ipairs(list) do lo = lo or finite_range(s.values) end
  if not lo then fail(fname, "no bar to draw: every value is NaN or infinite") end
  local names = opt_strings(fname, opts, "labels", n)
  if not names then
    names = {}
    for i = 1, n do names[i] = tostring(i) end
  end
  local width, height = 800, 500
  local columns = {}
  for i, s in ipairs(list) do columns[i] = s.values end
  local cmds = {
    { name = "$bars", columns = columns, digits = 9 },
    "set style data histograms",
    "set style histogram clustered gap 1",
    "set style fill solid 0.85 border lc rgb " .. Q("#333333"),
    "set boxwidth 0.9 relative",
    "set grid ytics lc rgb " .. Q("#dddddd"),
    "set xtics nomirror scale 0" .. xtics_rotation(names, width),
    "set ytics nomirror",
    "set border 3",
    -- Beside the plot, so that it never covers a bar or its value.
    "set key outside right top vertical",
    string.format("set xrange [-0.6:%s]", num(n - 0.4)),
    tics("xtics", names),
  }
  labels(fname, opts, cmds)
  if opts.logy then
    cmds[#cmds + 1] = "set logscale y"
  else
    cmds[#cmds + 1] = "set yrange [0:*]"
    -- Room above the bars for their values (the key is outside); without values the axis ends
    -- at the tic above the tallest bar (1 for shares, not 1.2).
    if opts.values then cmds[#cmds + 1] = "set offsets 0, 0, graph 0.12, 0" end
  end
  local plots = {}
  for i, s in ipairs(list) do
    plots[i] = string.format("$bars using %d %s lc %d", i,
      s.name and ("title " .. Q(s.name) .. " noenhanced") or "notitle", i)
  end
  if opts.values then
    -- Bar j of k in a cluster sits (j - (k-1)/2) / (k + gap) from the cluster's centre.
    local k = #list
    for j = 1, k do
      plots[#plots + 1] = string.format(
        "$bars using ($0 + %s):%d:(sprintf('%%.6g', $%d)) with labels center offset 0,0.7 "
          .. "font %s notitle", num((j - 1 - (k - 1) / 2) / (k + 1)), j, j, Q(",9"))
    end
  end
  cmds[#cmds + 1] = "plot " .. table.concat(plots, ", ")
  return draw(fname, opts, width, height, cmds)
end

-- ---- hist ----

function M.hist(values, opts)
  local fname = "plot.hist"
  opts = check_opts(fname, opts, { bins = true, range = true, logy = true, fontsize = true })
  opt_bool(fname, opts, "logy")
  local t = as_tensor(fname, values, "values")
  if t:numel() == 0 then fail(fname, "no values") end
  local bins = opt_int(fname, opts, "bins", 50, 1, 100000)
  local lo, hi
  if opts.range ~= nil then
    lo, hi = opt_range(fname, opts)
  else
    lo, hi = t:min(), t:max()
    if lo ~= lo or hi ~= hi then fail(fname, "values contain NaN") end
    if not finite(lo) or not finite(hi) then
      fail(fname, "values contain infinities; give range = {low, high}")
    end
    if lo == hi then lo, hi = lo - 0.5, hi + 0.5 end
  end
  local counts = t:histc(bins, lo, hi)
  local step = (hi - lo) / bins
  local centres = {}
  for i = 1, bins do centres[i] = lo + (i - 0.5) * step end
  local cmds = {
    { name = "$hist", columns = { centres, counts }, digits = 10 },
    "set style fill solid 0.85 border lc rgb " .. Q("#1f4e79"),
    string.format("set boxwidth %s absolute", num(step)),
    "set grid ytics lc rgb " .. Q("#dddddd"),
    "set border 3",
    "set xtics nomirror",
    "set ytics nomirror",
    string.format("set xrange [%s:%s]", num(lo), num(hi)),
  }
  labels(fname, opts, cmds, { xlabel = "value", ylabel = opts.logy and "count (log scale)" or "count" })
  local using = "1:2"
  if opts.logy then
    cmds[#cmds + 1] = "set logscale y"
    cmds[#cmds + 1] = "set yrange [0.8:*]"
    cmds[#cmds + 1] = "set format y " .. Q("%.0s%c") -- 1, 10, 100, 1k, ... 10M
    using = "1:($2 > 0 ? $2 : NaN)" -- empty bins have no logarithm
  else
    cmds[#cmds + 1] = "set yrange [0:*]"
  end
  cmds[#cmds + 1] = "plot $hist using " .. using .. " with boxes lc 1 notitle"
  return draw(fname, opts, 800, 500, cmds)
end

-- ---- axes ----

-- A range around lo..hi for an axis: `pad` of the span on each side (in log10 for a log axis),
-- and a range around a single value (gnuplot would warn about an empty range and pick one).
local function padded_range(lo, hi, pad, log)
  if log then
    local a, b = padded_range(math.log(lo, 10), math.log(hi, 10), pad, false)
    if lo == hi then a, b = math.log(lo, 10) - 0.3, math.log(hi, 10) + 0.3 end
    return 10 ^ a, 10 ^ b
  end
  if lo == hi then
    local d = lo == 0 and 1 or math.abs(lo) * 0.1
    return lo - d, hi + d
  end
  local m = (hi - lo) * pad
  return lo - m, hi + m
end

-- `set xrange [a:b]` (axis "x", "y", "y2"), when a and b make a range gnuplot can draw: finite,
-- a < b, above 0 on a log axis (values near the ends of the doubles can make them not); else
-- nothing, and gnuplot picks the range.
local function set_range(cmds, axis, a, b, log)
  if finite(a) and finite(b) and a < b and (not log or a > 0) then
    cmds[#cmds + 1] = string.format("set %srange [%s:%s]", axis, num(a), num(b))
  end
end

-- The x axis of whole numbers (epochs, trial numbers): the range is min..max with a margin of
-- 2% of the span (at least a quarter of one), not stretched to the next round tic (15 epochs do
-- not run to 16); tics on whole numbers a round step apart (1, 2, 5, 10, 20, ...; at most about 15),
-- with both ends labelled.
local function whole_x_axis(cmds, xmin, xmax)
  local span = xmax - xmin
  local nice, i, power, step = { 1, 2, 5 }, 1, 1, 1
  while span / step > 15 do
    i = i + 1
    if i > 3 then i, power = 1, power * 10 end
    step = nice[i] * power
  end
  local margin = span == 0 and 1 or math.max(span * 0.02, 0.25)
  set_range(cmds, "x", xmin - margin, xmax + margin)
  local places = {}
  local first = math.ceil(xmin / step) * step
  for v = first, xmax, step do places[#places + 1] = v end
  -- the ends, in place of a neighbouring tic closer than half a step
  if places[1] ~= xmin then
    if places[1] and places[1] - xmin < step / 2 then table.remove(places, 1) end
    table.insert(places, 1, xmin)
  end
  if places[#places] ~= xmax then
    if #places > 1 and xmax - places[#places] < step / 2 then table.remove(places) end
    places[#places + 1] = xmax
  end
  local names = {}
  for i, v in ipairs(places) do names[i] = string.format("%d", v) end
  cmds[#cmds + 1] = tics("xtics", names, places, " nomirror")
end

-- ---- lines ----

function M.lines(series, opts)
  local fname = "plot.lines"
  opts = check_opts(fname, opts, { x = true, logy = true, y2 = true, y2label = true,
    points = true, fontsize = true })
  opt_bool(fname, opts, "logy")
  opt_bool(fname, opts, "points")
  local list = series_list(fname, series)
  local shared_x = opts.x and as_tensor(fname, opts.x, "option 'x'")
  local on_y2 = {}
  for _, name in ipairs(opt_strings(fname, opts, "y2") or {}) do on_y2[name] = true end
  local cmds, plots = {}, {}
  local any_y2 = false
  local xmin, xmax, whole = math.huge, -math.huge, true
  local ylo, yhi, y2lo, y2hi
  for i, s in ipairs(list) do
    local n = s.values:numel()
    local x = s.x or shared_x
    if x and x:numel() ~= n then
      fail(fname, "series %d has %d values but %d x values", i, n, x:numel())
    end
    if not x then
      local xs = {}
      for k = 1, n do xs[k] = k end
      x = xs
    end
    for _, v in ipairs(is_tensor(x) and x:totable() or x) do
      if not finite(v) then fail(fname, "series %d: x values must be finite, got %s", i, v) end
      xmin, xmax = math.min(xmin, v), math.max(xmax, v)
      whole = whole and v == math.floor(v)
    end
    local block = "$line" .. i
    cmds[#cmds + 1] = { name = block, columns = { x, s.values }, digits = 9 }
    local axes = ""
    if s.name and on_y2[s.name] then
      axes = " axes x1y2"
      any_y2 = true
      y2lo, y2hi = finite_range(s.values, y2lo, y2hi)
    else
      ylo, yhi = finite_range(s.values, ylo, yhi)
    end
    local style = s.style
    if not style then
      style = (opts.points == false or n > 60) and "lines" or "linespoints"
    end
    plots[i] = string.format("%s using 1:2 with %s lc %d%s %s", block, SERIES_STYLES[style], i,
      axes, s.name and ("title " .. Q(s.name) .. " noenhanced") or "notitle")
  end
  -- gnuplot cannot scale an axis none of whose values is finite.
  local on_y1 = false
  for _, s in ipairs(list) do on_y1 = on_y1 or not (s.name and on_y2[s.name]) end
  if on_y1 and not ylo then
    fail(fname, "no point to draw: every value on the y axis is NaN or infinite")
  end
  if any_y2 and not y2lo then
    fail(fname, "no point to draw: every value on the y2 axis is NaN or infinite")
  end
  cmds[#cmds + 1] = "set grid lc rgb " .. Q("#dddddd")
  cmds[#cmds + 1] = "set key outside right top"
  cmds[#cmds + 1] = "set xtics nomirror"
  if whole and xmax - xmin <= 1e6 and math.abs(xmin) < 2 ^ 53 and math.abs(xmax) < 2 ^ 53 then
    whole_x_axis(cmds, xmin, xmax)
  else
    set_range(cmds, "x", padded_range(xmin, xmax, 0.02))
  end
  -- All values equal (or one point): a range around them, instead of gnuplot's warning.
  if ylo and ylo == yhi and not (opts.logy and ylo <= 0) then
    local a, b = padded_range(ylo, yhi, 0, opts.logy)
    set_range(cmds, "y", a, b, opts.logy)
  end
  if y2lo and y2lo == y2hi then
    set_range(cmds, "y2", padded_range(y2lo, y2hi, 0, false))
  end
  -- Room above and below the curves, so that no point sits on the border.
  cmds[#cmds + 1] = "set offsets 0, 0, graph 0.05, graph 0.05"
  labels(fname, opts, cmds)
  if any_y2 then
    cmds[#cmds + 1] = "set ytics nomirror"
    cmds[#cmds + 1] = "set y2tics"
    local y2label = opt_string(fname, opts, "y2label")
    if y2label then cmds[#cmds + 1] = "set y2label " .. Q(y2label) .. " noenhanced" end
  end
  if opts.logy then cmds[#cmds + 1] = "set logscale y" end
  cmds[#cmds + 1] = "plot " .. table.concat(plots, ", ")
  return draw(fname, opts, 800, 500, cmds)
end

-- ---- scatter ----

function M.scatter(x, y, opts)
  local fname = "plot.scatter"
  opts = check_opts(fname, opts, { groups = true, labels = true, logx = true, logy = true,
    pointsize = true, fontsize = true, categories = true })
  opt_bool(fname, opts, "logx")
  opt_bool(fname, opts, "logy")
  x = as_tensor(fname, x, "x")
  y = as_tensor(fname, y, "y")
  if x:numel() ~= y:numel() then
    fail(fname, "x has %d values but y has %d", x:numel(), y:numel())
  end
  local ps = opts.pointsize or 0.5
  if type(ps) ~= "number" or not (ps > 0 and ps <= 10) then
    fail(fname, "option 'pointsize' must be a number above 0 and at most 10")
  end
  local categories = opt_strings(fname, opts, "categories")
  if categories and #categories == 0 then fail(fname, "option 'categories' is empty") end
  if categories and opts.logx then
    fail(fname, "options 'categories' and 'logx' do not go together (categories are at x = 1, 2, ...)")
  end
  local xlo, xhi = finite_range(x)
  local ylo, yhi = finite_range(y)
  local drawable = false
  do
    local xs, ys = x:totable(), y:totable()
    for i = 1, #xs do
      if finite(xs[i]) and finite(ys[i]) then drawable = true break end
    end
  end
  if not drawable then
    fail(fname, "no point to draw: none of the %d points has a finite x and y", x:numel())
  end
  if opts.logx and xlo and xlo <= 0 then
    fail(fname, "option 'logx': every x must be above 0, got %s", num(xlo))
  end
  if opts.logy and ylo and ylo <= 0 then
    fail(fname, "option 'logy': every y must be above 0, got %s", num(ylo))
  end
  local cmds = { "set grid lc rgb " .. Q("#eeeeee"), "set key outside right top" }
  labels(fname, opts, cmds)
  if opts.logx then
    cmds[#cmds + 1] = "set logscale x"
    cmds[#cmds + 1] = "set format x " .. Q("%g") -- 0.001, not 0.00100
  end
  if opts.logy then cmds[#cmds + 1] = "set logscale y" end
  -- x: the points' range with 5% on each side (no point on the border), or the categories, each
  -- named under its place; y: gnuplot's own, with room above and below the points.
  if categories then
    local positions = {}
    for i = 1, #categories do positions[i] = i end
    local lo = math.min(1, xlo or 1)
    local hi = math.max(#categories, xhi or 1)
    set_range(cmds, "x", lo - 0.5, hi + 0.5)
    cmds[#cmds + 1] = tics("xtics", categories, positions,
      " nomirror" .. xtics_rotation(categories, 800))
  elseif xlo then
    local a, b = padded_range(xlo, xhi, 0.05, opts.logx)
    set_range(cmds, "x", a, b, opts.logx)
  end
  if ylo and ylo == yhi then
    local a, b = padded_range(ylo, yhi, 0, opts.logy)
    set_range(cmds, "y", a, b, opts.logy)
  elseif ylo then
    cmds[#cmds + 1] = "set offsets 0, 0, graph 0.05, graph 0.05"
  end
  if opts.groups == nil then
    cmds[#cmds + 1] = { name = "$points", columns = { x, y }, digits = 7 }
    cmds[#cmds + 1] = string.format("plot $points using 1:2 with points pt 7 ps %s lc 1 notitle",
      num(ps))
    return draw(fname, opts, 800, 600, cmds)
  end
  local groups = as_tensor(fname, opts.groups, "option 'groups'")
  if groups:numel() ~= x:numel() then
    fail(fname, "groups has %d values for %d points", groups:numel(), x:numel())
  end
  local seen, ids = {}, {}
  local max_groups = 64
  for _, g in ipairs(groups:totable()) do
    if not finite(g) then fail(fname, "option 'groups' must hold finite numbers, got %s", g) end
    if not seen[g] then
      seen[g] = true
      ids[#ids + 1] = g
      if #ids > max_groups then fail(fname, "more than %d groups", max_groups) end
    end
  end
  table.sort(ids)
  local names = opt_strings(fname, opts, "labels") or {}
  cmds[#cmds + 1] = { name = "$points", columns = { x, y, groups }, digits = 7 }
  local plots = {}
  for i, g in ipairs(ids) do
    -- Group ids are class ids (0-based); labels[g + 1] names group g.
    local key = math.tointeger(g)
    local name = key and names[key + 1] or string.format("%g", g)
    plots[i] = string.format(
      "$points using 1:($3 == %s ? $2 : NaN) with points pt 7 ps %s lc rgb %s title %s", num(g),
      num(ps), Q(COLOURS[(i - 1) % #COLOURS + 1]), Q(name) .. " noenhanced")
  end
  cmds[#cmds + 1] = "plot " .. table.concat(plots, ", ")
  return draw(fname, opts, 800, 600, cmds)
end

-- ---- images and matrices: crisp in SVG, drawn by fm.termimage on a text terminal ----

-- SVG figures draw their images pixel by pixel (`with image pixels`): gnuplot would otherwise put
-- each image in as a small PNG that viewers stretch and blur. A pixel costs about 100 bytes of
-- SVG; past this many a figure keeps the embedded image (which the HTML report shows pixelated).
local SVG_PIXELS_MAX = 65536

-- "with image", or "with image pixels" for an SVG figure of up to SVG_PIXELS_MAX pixels.
local function image_style(kind, pixels)
  if kind == "svg" and pixels <= SVG_PIXELS_MAX then return "with image pixels" end
  return "with image"
end

-- Whether the figure goes to a text terminal: gnuplot's text terminal cannot draw images (an
-- image came out as blank lines), so fm.termimage draws them there.
local function to_text_terminal(fname, opts)
  local kind, file = output_kind(fname, opts)
  return kind == "txt" and file == nil
end

-- The columns a figure drawn by fm.termimage may take: opts.size's width, else the terminal's.
-- The options gnuplot would have read are checked as for a figure drawn by gnuplot.
local function text_columns(fname, opts)
  opt_int(fname, opts, "fontsize", 11, 4, 72)
  for _, key in ipairs { "title", "xlabel", "ylabel" } do opt_string(fname, opts, key) end
  local w = opt_size(fname, opts)
  if w and w > TEXT_MAX[1] then
    fail(fname, "a text figure of %d characters across is wider than %d", w, TEXT_MAX[1])
  end
  return w or require("fmnist.termimage").columns()
end

-- A line of colours from lo to hi with the two values at its ends: the colour scale of a
-- figure drawn by fm.termimage.
local function text_colour_scale(palette_name, lo, hi, label)
  local ti = require "fmnist.termimage"
  local steps = {}
  for i = 1, 24 do steps[i] = lo + (hi - lo) * (i - 1) / 23 end
  local bar = ti.image(fm.tensor { steps, steps }, { palette = palette_name, range = { lo, hi },
    scale = 1, width = 24 })
  return string.format("%.4g %s %.4g%s", lo, (bar:gsub("\n$", "")), hi,
    label and ("  " .. label) or "")
end

-- Writes what fm.termimage drew, under the title (broken to the columns). Returns nothing, as a
-- figure drawn on standard output does.
local function show_text(fname, opts, columns, drawing, notes)
  local out = {}
  local title = opt_string(fname, opts, "title")
  if title then
    for _, line in ipairs(wrap(title, math.max(10, columns))) do out[#out + 1] = line .. "\n" end
  end
  out[#out + 1] = drawing
  for _, line in ipairs(notes or {}) do out[#out + 1] = line .. "\n" end
  io.stdout:write(table.concat(out))
  io.stdout:flush()
  return nil
end

-- ---- heatmap ----

-- Is every value an integer (counts in a confusion matrix)?
local function all_integers(t)
  for _, row in ipairs(t:totable()) do
    for _, v in ipairs(type(row) == "table" and row or { row }) do
      if v ~= math.floor(v) then return false end
    end
  end
  return true
end

function M.heatmap(matrix, opts)
  local fname = "plot.heatmap"
  opts = check_opts(fname, opts, { labels = true, row_labels = true, col_labels = true,
    palette = true, range = true, values = true, digits = true, cblabel = true, fontsize = true })
  opt_bool(fname, opts, "values")
  local m = matrix
  if not is_tensor(m) then
    if type(m) ~= "table" or type(m[1]) ~= "table" then
      fail(fname, "matrix must be a 2-D tensor or a list of rows")
    end
    m = fm.tensor(m)
  end
  if m:dim() ~= 2 then fail(fname, "matrix must be 2-D, got %d-D", m:dim()) end
  local shape = m:shape()
  local nr, nc = shape[1], shape[2]
  if nr == 0 or nc == 0 then fail(fname, "matrix is empty") end
  local row_names = opt_strings(fname, opts, "row_labels", nr)
    or (opts.labels and opt_strings(fname, opts, "labels", nr))
  local col_names = opt_strings(fname, opts, "col_labels", nc)
    or (opts.labels and opt_strings(fname, opts, "labels", nc))
  local p, palette_cmd = palette(fname, opts, "blues")
  local lo, hi
  if opts.range ~= nil then
    lo, hi = opt_range(fname, opts)
  else
    lo, hi = m:min(), m:max()
    if not finite(lo) or not finite(hi) then
      fail(fname, "matrix holds NaN or infinities; give range = {low, high}")
    end
    if p.symmetric then
      local a = math.max(math.abs(lo), math.abs(hi))
      if a == 0 then a = 1 end
      lo, hi = -a, a
    elseif lo == hi then
      lo, hi = lo - 0.5, hi + 0.5
    end
  end
  local cmds = {
    { name = "$m", matrix = m, digits = 9 },
    palette_cmd,
    string.format("set cbrange [%s:%s]", num(lo), num(hi)),
    string.format("set xrange [-0.5:%s]", num(nc - 0.5)),
    string.format("set yrange [%s:-0.5]", num(nr - 0.5)), -- row 1 at the top
    "set size ratio -1",
    "set tics scale 0",
    "set border lw 0.5",
  }
  local cblabel = opt_string(fname, opts, "cblabel")
  local show_values = opts.values
  if show_values == nil then show_values = nr <= 20 and nc <= 20 end
  local digits = opts.digits ~= nil and opt_int(fname, opts, "digits", 2, 0, 10)
    or (all_integers(m) and 0 or 2)
  local palette_name = opts.palette or "blues"
  if to_text_terminal(fname, opts) then
    local ti = require "fmnist.termimage"
    local columns = text_columns(fname, opts)
    local xlabel, ylabel = opt_string(fname, opts, "xlabel"), opt_string(fname, opts, "ylabel")
    local notes = {}
    if xlabel or ylabel then
      notes[1] = "rows: " .. (ylabel or "-") .. "; columns: " .. (xlabel or "-")
    end
    if show_values then
      return show_text(fname, opts, columns, ti.heatmap(m, { row_labels = row_names,
        col_labels = col_names, digits = digits, palette = palette_name, range = { lo, hi } }),
        notes)
    end
    -- Too many cells for their values: the matrix as an image, with its colour scale.
    table.insert(notes, 1, text_colour_scale(palette_name, lo, hi, cblabel))
    return show_text(fname, opts, columns, ti.image(m, { palette = palette_name,
      range = { lo, hi }, width = columns }), notes)
  end
  if cblabel then cmds[#cmds + 1] = "set cblabel " .. Q(cblabel) .. " noenhanced" end
  local width = 720
  if col_names then
    cmds[#cmds + 1] = tics("xtics", col_names, nil, xtics_rotation(col_names, width * 0.7))
  else
    cmds[#cmds + 1] = index_tics("xtics", nc)
  end
  if row_names then
    cmds[#cmds + 1] = tics("ytics", row_names)
  else
    cmds[#cmds + 1] = index_tics("ytics", nr)
  end
  labels(fname, opts, cmds)
  local plot = "plot $m matrix using 1:2:3 " .. image_style(output_kind(fname, opts), nr * nc)
    .. " notitle"
  if show_values then
    local fmt = "%." .. digits .. "f"
    -- White text where the palette is dark, black elsewhere.
    local z = string.format("(($3 - %s) / %s)", num(lo), num(hi - lo))
    local dark
    if p.dark == "high" then
      dark = z .. " > 0.55"
    elseif p.dark == "low" then
      dark = z .. " < 0.45"
    else
      dark = "abs(" .. z .. " - 0.5) > 0.3"
    end
    local size = nr <= 12 and nc <= 12 and ",10" or ",8"
    plot = plot .. string.format(
      ", $m matrix using 1:2:(sprintf(%s, $3)):(%s ? 0xffffff : 0x000000) with labels "
        .. "tc rgb variable font %s notitle", Q(fmt), dark, Q(size))
  end
  cmds[#cmds + 1] = plot
  -- The colour box takes some of the width; the title and labels some of the height.
  local height = math.floor(width * 0.9 * math.min(1.3, math.max(0.4, nr / nc)) + 0.5)
  return draw(fname, opts, width, height, cmds)
end

-- ---- images ----

-- An image tensor as a 2-D matrix: 2-D as is, 1-D of square length as a square.
local function as_image(fname, t, what)
  if not is_tensor(t) then fail(fname, "%s must be a tensor, got %s", what, type(t)) end
  if t:dim() == 2 then return t end
  local n = t:numel()
  local side = math.tointeger(math.floor(math.sqrt(n) + 0.5))
  if t:dim() == 1 and side and side * side == n and n > 0 then return t:reshape(side, side) end
  fail(fname, "%s must be a 2-D tensor or a 1-D one of square length", what)
end

-- The colour range of images: opts.range, else [0, 1] when the values fit, else theirs. t is a
-- tensor or a list of tensors.
local function image_range(fname, opts, t)
  if opts.range ~= nil then return opt_range(fname, opts) end
  local lo, hi
  if is_tensor(t) then
    lo, hi = t:min(), t:max()
  else
    lo, hi = math.huge, -math.huge
    for _, img in ipairs(t) do lo, hi = math.min(lo, img:min()), math.max(hi, img:max()) end
  end
  if not finite(lo) or not finite(hi) then
    fail(fname, "the images hold NaN or infinities; give range = {low, high}")
  end
  if lo >= 0 and hi <= 1 then return 0, 1 end
  if lo == hi then return lo - 0.5, hi + 0.5 end
  return lo, hi
end

function M.image(t, opts)
  local fname = "plot.image"
  opts = check_opts(fname, opts, { palette = true, range = true, colorbox = true, fontsize = true })
  opt_bool(fname, opts, "colorbox")
  local img = as_image(fname, t, "image")
  local shape = img:shape()
  local p, palette_cmd = palette(fname, opts, "gray")
  local lo, hi = image_range(fname, opts, img)
  if p.symmetric and opts.range == nil then
    local a = math.max(math.abs(img:min()), math.abs(img:max()))
    if a == 0 then a = 1 end
    lo, hi = -a, a
  end
  local cmds = {
    { name = "$img", matrix = img, digits = 6 },
    palette_cmd,
    string.format("set cbrange [%s:%s]", num(lo), num(hi)),
    string.format("set xrange [-0.5:%s]", num(shape[2] - 0.5)),
    string.format("set yrange [%s:-0.5]", num(shape[1] - 0.5)),
    "set size ratio -1",
    "unset xtics",
    "unset ytics",
    "set border 0",
  }
  if to_text_terminal(fname, opts) then
    local columns = text_columns(fname, opts)
    local palette_name = opts.palette or "gray"
    return show_text(fname, opts, columns, require("fmnist.termimage").image(img, {
      palette = palette_name, range = { lo, hi }, width = columns }),
      opts.colorbox and { text_colour_scale(palette_name, lo, hi) } or nil)
  end
  if not opts.colorbox then cmds[#cmds + 1] = "unset colorbox" end
  labels(fname, opts, cmds)
  cmds[#cmds + 1] = "plot $img matrix using 1:2:3 "
    .. image_style(output_kind(fname, opts), shape[1] * shape[2]) .. " notitle"
  return draw(fname, opts, opts.colorbox and 560 or 480, 480, cmds)
end

function M.images(list, opts)
  local fname = "plot.images"
  opts = check_opts(fname, opts, { cols = true, labels = true, captions = true, palette = true,
    range = true, cell = true, fontsize = true, colorbox = true, cblabel = true })
  opt_bool(fname, opts, "colorbox")
  local n, h, w
  if is_tensor(list) then
    local shape = list:shape()
    n = shape[1]
    if #shape == 3 then
      h, w = shape[2], shape[3]
    elseif #shape == 2 then
      local s = as_image(fname, list[1], "image 1"):shape()
      h, w = s[1], s[2]
    else
      fail(fname, "a tensor of images must be n x h x w or n x (k*k)")
    end
  elseif type(list) == "table" then
    list, n = raw_list(list)
    if n == 0 then fail(fname, "no images") end
    local s = as_image(fname, list[1], "image 1"):shape()
    h, w = s[1], s[2]
  else
    fail(fname, "images must be a list of tensors or a tensor, got %s", type(list))
  end
  if n == 0 then fail(fname, "no images") end
  local captions = opt_strings(fname, opts, "captions") or opt_strings(fname, opts, "labels")
  if captions and #captions ~= n then
    fail(fname, "%d captions for %d images", #captions, n)
  end
  local cols = math.min(opt_int(fname, opts, "cols", math.min(n, 10), 1, 1000), n)
  local rows = (n + cols - 1) // cols
  local cell = opt_int(fname, opts, "cell", 84, 8, 1000) -- pixels of figure per image
  local scale = cell / w
  -- Captions may have several lines ("true: Coat\npred: Shirt"); each one more needs about 13
  -- pixels of figure.
  local caption_lines = 1
  for _, c in ipairs(captions or {}) do
    local _, breaks = c:gsub("\n", "")
    caption_lines = math.max(caption_lines, breaks + 1)
  end
  -- Gaps in image pixels: a little between columns, room for the captions under each row. The
  -- gaps are NaN, which gnuplot leaves unpainted (white), unlike any grey level.
  local gap_x = math.max(2, w // 10)
  local gap_caption = math.max(4, (h * 2) // 5) -- room for one line
  local gap_y = captions and gap_caption + math.ceil((caption_lines - 1) * 14 / scale) or gap_x
  local ok, canvas = pcall(fm.png.grid, list, { cols = cols, gap_x = gap_x, gap_y = gap_y,
    background = 0 / 0 })
  if not ok then fail(fname, "%s", (tostring(canvas):gsub("^png%.grid: ", ""))) end
  local H = rows * h + (rows - 1) * gap_y + (captions and gap_y or 0)
  local W = cols * w + (cols - 1) * gap_x
  local lo, hi = image_range(fname, opts, list)
  local p, palette_cmd = palette(fname, opts, "gray")
  if p.symmetric and opts.range == nil then
    -- Diverging colours: zero in the middle, so that the sign of every value shows.
    local a = math.max(math.abs(lo), math.abs(hi))
    if a == 0 then a = 1 end
    lo, hi = -a, a
  end
  -- A colour scale on the right when asked for (maps of weights, saliency, activations).
  local colorbox = opts.colorbox or opts.cblabel ~= nil
  local cblabel = opt_string(fname, opts, "cblabel")
  if to_text_terminal(fname, opts) then
    local columns = text_columns(fname, opts)
    local palette_name = opts.palette or "gray"
    local imgs = {}
    for i = 1, n do imgs[i] = as_image(fname, list[i], "image " .. i) end
    return show_text(fname, opts, columns, require("fmnist.termimage").images(imgs, {
      captions = captions, palette = palette_name, range = { lo, hi }, width = columns,
      cols = opts.cols ~= nil and cols or nil }),
      colorbox and { text_colour_scale(palette_name, lo, hi, cblabel) } or nil)
  end
  local cmds = {
    { name = "$grid", matrix = canvas, digits = 4 },
    palette_cmd,
    string.format("set cbrange [%s:%s]", num(lo), num(hi)),
    string.format("set xrange [-0.5:%s]", num(W - 0.5)),
    string.format("set yrange [%s:-0.5]", num(H - 0.5)),
    "set size ratio -1",
    "unset xtics",
    "unset ytics",
    colorbox and "set colorbox" or "unset colorbox",
    "set border 0",
    "set lmargin 1",
    colorbox and (cblabel and "set rmargin 16" or "set rmargin 11") or "set rmargin 1",
    "set bmargin 1",
  }
  if cblabel then cmds[#cmds + 1] = "set cblabel " .. Q(cblabel) .. " noenhanced" end
  local font = Q("," .. (cell >= 70 and 9 or 7))
  if captions then
    for k = 1, n do
      local x = ((k - 1) % cols) * (w + gap_x) + (w - 1) / 2
      -- gnuplot puts a label's first line at y and the others below it.
      local y = ((k - 1) // cols) * (h + gap_y) + h - 0.5 + gap_caption * 0.45
      cmds[#cmds + 1] = string.format("set label %d %s at %s,%s center front font %s noenhanced",
        k, Q(captions[k]), num(x), num(y), font)
    end
  end
  labels(fname, opts, cmds)
  cmds[#cmds + 1] = "plot $grid matrix using 1:2:3 " .. image_style(output_kind(fname, opts), n * h * w)
    .. " notitle"
  local width = math.floor(W * scale + 40 + (colorbox and (cblabel and 150 or 110) or 0))
  local height = math.floor(H * scale + (opts.title and 70 or 30))
  -- The gaps are NaN on purpose.
  return draw(fname, opts, width, height, cmds, { "missing or undefined values" })
end

function M.close()
  gp.close()
end

return M
