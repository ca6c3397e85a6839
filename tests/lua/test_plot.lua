-- fm.plot and fm.gnuplot: every figure kind writes a valid file in every terminal, user text is
-- drawn and never run, gnuplot's errors come back, a missing or dead gnuplot gives a clear error
-- without hanging, and one process serves all figures and is gone after close.
local T = require "testlib"
local fm = require "fmnist"

local host = os.getenv("FMNIST_HOST") or "./fmnist-lua"

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function capture(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok, _, status = p:close()
  return out, ok, status
end

local dir = T.tmpdir()
local function path(name) return dir .. "/" .. name end
local read = T.read

local function exists(name) return read(name) ~= nil end

local PNG_SIGNATURE = "\137PNG\r\n\26\n"

-- A PNG file of the expected size in pixels, read back through libpng.
local function check_png(file, width, height, what)
  local data = read(file)
  T.ok(data and data:sub(1, 8) == PNG_SIGNATURE and #data > 1000,
    what .. ": a PNG file of " .. (data and #data or 0) .. " bytes")
  local ok, img = pcall(fm.load_png, file)
  T.ok(ok and img:dim() == 2, what .. ": libpng reads it back")
  if ok and width then
    T.eq(img:shape(), { height, width }, what .. ": " .. width .. "x" .. height .. " pixels")
    -- Not a blank page: a figure has dark ink on white.
    T.ok(img:min() < 0.3 and img:max() > 0.9, what .. ": has ink and background")
  end
end

-- ---- every figure kind, as PNG ----
local classes = { "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
  "Sneaker", "Bag", "Ankle boot" }
fm.seed(3)
local cm = fm.zeros(10, 10)
for i = 1, 10 do
  for j = 1, 10 do cm:set(i, j, i == j and 900 or (i * 7 + j * 3) % 40) end
end
local ten = {}
for i = 1, 12 do ten[i] = fm.rand(28, 28) end

local figures = {
  { "bar", function(file)
    return fm.plot.bar({ { name = "train", values = fm.tensor { 6000, 5900, 6100 } },
      { name = "test", values = { 1000, 990, 1010 } } },
      { labels = { "a", "b", "c" }, values = true, title = "bar", file = file })
  end, 800, 500 },
  { "bar of named series", function(file)
    return fm.plot.bar({ train = { 1, 2 }, test = { 2, 1 } }, { logy = true, file = file })
  end, 800, 500 },
  { "hist", function(file)
    return fm.plot.hist(fm.randn(200000), { bins = 40, logy = true, title = "hist", file = file })
  end, 800, 500 },
  { "lines", function(file)
    return fm.plot.lines({ { name = "loss", values = { 1, 0.5, 0.3 } },
      { name = "accuracy", values = { 0.6, 0.8, 0.9 } } },
      { xlabel = "epoch", y2 = { "accuracy" }, title = "lines", file = file })
  end, 800, 500 },
  { "scatter", function(file)
    local g = fm.tensor { 0, 1, 2, 0, 1, 2, 0, 1 }
    return fm.plot.scatter(fm.randn(8), fm.randn(8),
      { groups = g, labels = { "zero", "one", "two" }, title = "scatter", file = file })
  end, 800, 600 },
  { "heatmap 10x10", function(file)
    return fm.plot.heatmap(cm, { labels = classes, title = "confusion", xlabel = "predicted",
      ylabel = "true", file = file })
  end },
  { "heatmap 28x28 diverging", function(file)
    return fm.plot.heatmap(fm.randn(28, 28), { palette = "diverging", title = "w", file = file })
  end },
  { "image", function(file)
    return fm.plot.image(ten[1], { title = "one image", file = file })
  end, 480, 480 },
  { "images", function(file)
    local caps = {}
    for i = 1, #ten do caps[i] = "img " .. i end
    return fm.plot.images(ten, { captions = caps, cols = 6, title = "grid", file = file })
  end },
}
for _, f in ipairs(figures) do
  local file = path(f[1]:gsub("%W", "_") .. ".png")
  local ok, result = pcall(f[2], file)
  T.ok(ok and result == file, f[1] .. ": returns the file's path (" .. tostring(result) .. ")")
  check_png(file, f[3], f[4], f[1])
end

-- gnuplot's own PNGs are RGB(A): load_png reads them as grayscale all the same.
local img = fm.load_png(path("bar.png"))
T.ok(img:min() >= 0 and img:max() <= 1, "a colour PNG from gnuplot loads as grayscale in [0,1]")

-- ---- the other terminals ----
local svg = path("fig.svg")
fm.plot.bar({ 1, 2, 3 }, { title = "an svg title", labels = { "x", "y", "z" }, file = svg })
local s = read(svg) or ""
T.ok(s:find("<svg", 1, true) and s:find("an svg title", 1, true) and s:find("</svg>", 1, true),
  "svg: a complete SVG document with the title")

local pdf = path("fig.pdf")
fm.plot.lines({ 1, 3, 2 }, { title = "pdf", file = pdf })
s = read(pdf) or ""
T.ok(s:sub(1, 5) == "%PDF-" and #s > 1000, "pdf: a PDF file of " .. #s .. " bytes")

local txt = path("fig.txt")
fm.plot.bar({ 3, 1, 2 }, { title = "text title", labels = { "aa", "bb", "cc" }, file = txt })
s = read(txt) or ""
T.ok(s:find("text title", 1, true) and s:find("aa", 1, true) and s:find("%*"),
  "txt: a dumb text drawing with the title, labels and bars")

T.err("cannot tell the kind of figure from the file name", fm.plot.bar, { 1 },
  { file = path("x.jpg") })

-- Without a file: drawn on standard output, as text or as sixel graphics.
local code = [[local fm = require "fmnist"
print(fm.plot.bar({3, 1, 2}, {title = "on the terminal"}))]]
local out, ok = capture(host .. " -e " .. shell_quote(code))
T.ok(ok and out:find("on the terminal", 1, true) and out:find("nil\n$"),
  "no file: drawn as text on stdout, returns nil")
-- FMNIST_PLOT=sixel: sixel only where the terminal says it shows it (here it is faked: stdout
-- is a pipe); elsewhere the text drawing, and a word on stderr, once for all figures.
out = capture("FMNIST_PLOT=sixel " .. host .. " -e " .. shell_quote(
  "require('fmnist.termimage')._set_sixel_support(true)\n" .. code))
T.ok(out:sub(1, 3) == "\27Pq" and out:find("\27\\", 1, true),
  "FMNIST_PLOT=sixel in a terminal that shows sixel: sixel graphics on stdout")
do
  local err_file = path("sixel_err.txt")
  local two = code .. "\nprint(fm.plot.lines({1, 2, 3}, {title = 'second'}))"
  local p = io.popen("FMNIST_PLOT=sixel " .. host .. " -e " .. shell_quote(two) .. " 2>" .. shell_quote(err_file))
  out = p:read("a")
  p:close()
  local err = read(err_file) or ""
  T.ok(not out:find("\27P", 1, true) and out:find("on the terminal", 1, true)
    and out:find("second", 1, true) and out:find("nil\n.*nil\n$"),
    "FMNIST_PLOT=sixel in a terminal without sixel: both figures drawn as text")
  local _, warnings = err:gsub("does not say it shows sixel graphics", "")
  T.eq(warnings, 1, "and said on stderr once (" .. err:gsub("\n", " ") .. ")")
  T.ok(err:find("FMNIST_PLOT=sixel: this terminal does not say it shows sixel graphics (its "
    .. "answer to ESC [ c has no 4); drawing as text instead", 1, true), "the words say why")
end

-- ---- escaping: user text is drawn, nothing runs ----
local evil = 'a"; system("touch ' .. path("x") .. '"); "\n`touch ' .. path("y") .. '`\'; '
  .. "system('touch " .. path("z") .. "') \\ @x $y"
local evil_svg = path("evil.svg")
ok = pcall(fm.plot.bar, { 1, 2 }, { title = evil, xlabel = evil, ylabel = evil,
  labels = { evil, "`touch " .. path("w") .. "`" }, file = evil_svg })
T.ok(ok, "a figure with hostile titles and labels is drawn")
T.ok(not exists(path("x")) and not exists(path("y")) and not exists(path("z"))
  and not exists(path("w")), "nothing in the titles or labels ran")
s = read(evil_svg) or ""
T.ok(s:find('<text>a"; system("touch ' .. path("x") .. '"); "</text>', 1, true)
  and s:find("<text>`touch " .. path("y") .. "`", 1, true),
  "the hostile text appears as text in the figure")

ok = pcall(fm.plot.images, { ten[1], ten[2] }, { captions = { evil, "c`touch " .. path("v") .. "`" },
  title = evil, file = path("evil_images.png") })
T.ok(ok and exists(path("evil_images.png")) and not exists(path("v")) and not exists(path("x")),
  "hostile captions are drawn and run nothing")

-- A file name cannot hold a slash, so this command would run in the current directory.
local odd_name = path("we'ird \"name\" `touch fmnist-test-u`; $(touch fmnist-test-u).png")
ok = pcall(fm.plot.image, ten[1], { file = odd_name })
T.ok(ok and exists(odd_name) and not exists("fmnist-test-u"),
  "a file name with quotes and backquotes is written as given, running nothing")
os.remove("fmnist-test-u")

-- Every byte value survives quoting, also next to digits (octal escapes must not swallow them).
local bytes = {}
for c = 1, 255 do bytes[#bytes + 1] = string.char(c) .. "0" .. string.char(c) .. "7" end
bytes = table.concat(bytes)
local printed = path("printed.txt")
fm.gnuplot.run { terminal = "dumb", output = path("print.txt"),
  "set print " .. fm.gnuplot.quote(printed), "print " .. fm.gnuplot.quote(bytes), "unset print",
  "plot x" }
T.ok(read(printed) == bytes .. "\n", "quote: all 255 byte values read back exactly")

-- ---- gnuplot's errors come back ----
local pid = fm.gnuplot.pid()
T.err("gnuplot: undefined variable: foo", fm.gnuplot.run, { terminal = "dumb", "plot foo" })
T.eq(fm.gnuplot.pid(), pid, "after an error the same gnuplot serves the next figure")

-- An error in the middle of a figure leaves an earlier file with the same name untouched.
local keep = path("keep.png")
local f = io.open(keep, "wb")
f:write("old contents")
f:close()
T.err("undefined variable", fm.gnuplot.run, { terminal = "pngcairo", output = keep, "plot nope" })
T.eq(read(keep), "old contents", "a failed figure does not replace the file")

T.err("cannot write", fm.plot.bar, { 1 }, { file = path("no/such/dir/x.png") })

-- Data blocks are checked before anything is sent.
T.err("column 2 has 2 values, column 1 has 3", fm.gnuplot.run, { terminal = "dumb",
  { name = "$d", columns = { { 1, 2, 3 }, { 1, 2 } } }, "plot $d" })
T.err("value 2 is a string", fm.gnuplot.run, { terminal = "dumb",
  { name = "$d", columns = { { 1, "x" } } }, "plot $d" })
T.err("needs a name like", fm.gnuplot.run, { terminal = "dumb", { name = "d; system('x')",
  columns = { { 1 } } } })

-- Option checking.
T.err("unknown option 'titel'", fm.plot.bar, { 1, 2 }, { titel = "x" })
T.err("unknown palette 'rainbow'", fm.plot.heatmap, cm, { palette = "rainbow" })
T.err("option 'labels' has 2 labels for 3 items", fm.plot.bar, { 1, 2, 3 }, { labels = { "a", "b" } })
T.err("series 2 has 2 values, series 1 has 3", fm.plot.bar, { { 1, 2, 3 }, { 1, 2 } })
T.err("matrix must be 2-D", fm.plot.heatmap, fm.zeros(3))
T.err("image 2", fm.plot.images, { ten[1], fm.zeros(5, 5) })

-- A grid of images with a colour scale (maps of weights), and captions of several lines.
local plain = fm.load_png(fm.plot.images(ten, { cols = 6, file = path("grid_plain.png") }))
local scaled = fm.load_png(fm.plot.images(ten, { cols = 6, palette = "diverging",
  cblabel = "weight", file = path("grid_scale.png") }))
T.eq(scaled:shape()[2] - plain:shape()[2], 150, "images with cblabel: 150 pixels wider for the scale")
T.eq(scaled:shape()[1], plain:shape()[1], "and as tall")
local caps1, caps3 = {}, {}
for i = 1, #ten do caps1[i], caps3[i] = "one", "true: a\npred: b\n97%" end
local short = fm.load_png(fm.plot.images(ten, { cols = 6, captions = caps1, file = path("c1.png") }))
local tall = fm.load_png(fm.plot.images(ten, { cols = 6, captions = caps3, file = path("c3.png") }))
-- two rows of images, each with two more lines of about 14 pixels
T.ok(tall:shape()[1] >= short:shape()[1] + 2 * 2 * 13,
  "three-line captions: each row of images gets room for two more lines ("
    .. short:shape()[1] .. " -> " .. tall:shape()[1] .. " pixels)")

-- Lines over whole numbers (epochs) get whole-number tics; a single point no warning.
fm.plot.lines({ 0.5, 0.4, 0.3 }, { file = path("epochs.txt") })
s = read(path("epochs.txt")) or ""
T.ok(s:find("\n%s+1%s+2%s+3%s*\n") and not s:find("1.5", 1, true), "epochs 1, 2, 3: tics 1 2 3")
out = capture(host .. " -e " .. shell_quote([[local fm = require "fmnist"
print(fm.plot.lines({training = {0.5}, validation = {0.6}}, {file = "]] .. path("one.png") .. [["}))]]))
T.ok(out:find("one.png", 1, true) and not out:find("arning", 1, true),
  "one epoch: drawn without a warning about an empty range (" .. out:gsub("%s+$", "") .. ")")

-- ---- one process for many figures, none left behind ----
local function self_pid()
  local stat = read("/proc/self/stat")
  return tonumber(stat:match("^(%d+)"))
end
local me = self_pid()
local function gnuplot_children()
  local n = 0
  for line in capture("ps -o pid=,comm= --ppid " .. me):gmatch("[^\n]+") do
    if line:find("gnuplot", 1, true) then n = n + 1 end
  end
  return n
end
-- Our open descriptors, leaving out the pipe of the popen that asks (while popen starts the
-- shell, both of its ends are briefly open here).
local function open_fds()
  return tonumber((capture("p=$(readlink /proc/$$/fd/1); ls -l /proc/" .. me
    .. "/fd | grep -F -e ' -> ' | grep -cvF \"$p\""):match("%d+")))
end

fm.plot.close()
local fds_before = open_fds()
local pids, most = {}, 0
for i = 1, 200 do
  fm.plot.lines({ i, i + 1, i * 2 }, { title = "figure " .. i, file = path("many.txt") })
  pids[fm.gnuplot.pid()] = true
  if i % 50 == 0 then most = math.max(most, gnuplot_children()) end
end
local distinct = 0
for _ in pairs(pids) do distinct = distinct + 1 end
T.eq(distinct, 1, "200 figures, one gnuplot process")
T.ok(most == 1, "at most one gnuplot child at any time (saw " .. most .. ")")
local last = fm.gnuplot.pid()
fm.plot.close()
T.eq(gnuplot_children(), 0, "no gnuplot process after close")
T.ok(not exists("/proc/" .. last .. "/stat"), "the process was reaped (no zombie)")
T.eq(open_fds(), fds_before, "no pipe left open")

-- A killed gnuplot is replaced on the next figure.
fm.plot.bar({ 1 }, { file = path("a.txt") })
local old = fm.gnuplot.pid()
os.execute("kill -9 " .. old)
capture("sleep 0.1")
ok = pcall(fm.plot.bar, { 1 }, { file = path("b.txt") })
T.ok(ok and fm.gnuplot.pid() ~= old and exists(path("b.txt")), "a killed gnuplot is replaced")

-- A gnuplot that hangs is killed after the timeout.
local t0 = os.time()
T.err("did not finish the figure within 1 s", fm.gnuplot.run,
  { terminal = "dumb", timeout = 1, "pause 30", "plot x" })
T.ok(os.time() - t0 <= 5, "the timeout is kept")
T.ok(pcall(fm.plot.bar, { 1 }, { file = path("c.txt") }), "and the next figure works")

-- The process ends with the Lua state.
out = capture(host .. " -e " .. shell_quote([[local fm = require "fmnist"
fm.plot.bar({1}, {file = "]] .. path("d.txt") .. [["}); print("pid", fm.gnuplot.pid())]]))
local child = out:match("pid\t(%d+)")
T.ok(child and not exists("/proc/" .. child .. "/stat"),
  "gnuplot is ended and reaped when the program ends (pid " .. tostring(child) .. ")")

-- ---- file names only ever name files ----
-- Each name below is drawn to from a program whose current directory is names_dir, so that a
-- name gnuplot would read as a command ('|cmd') or expand ('~/') is tried as given.
local function abspath(p)
  if p:sub(1, 1) == "/" then return p end
  return (capture("pwd"):gsub("\n$", "")) .. "/" .. p:gsub("^%./", "")
end
local host_abs = abspath(host)
local names_dir = path("names")
local names_tmp = path("names-tmp")
assert(os.execute("mkdir " .. shell_quote(names_dir) .. " " .. shell_quote(names_dir .. "/~") .. " "
  .. shell_quote(names_dir .. "/sub") .. " " .. shell_quote(names_dir .. "/adir.png") .. " "
  .. shell_quote(names_tmp)))
local fifo_ok = os.execute("mkfifo " .. shell_quote(names_dir .. "/fifo.png"))
local odd_names = { "|touch PWNED1;#.png", " |touch PWNED2;#.png", "<touch PWNED3;#.png",
  "-dash.png", "50% off.png", "%s%n.png", "we'ird \"q\" `touch PWNED4` $(touch PWNED5).png",
  "na\195\175ve \195\188.png", "line\nbreak.png", "~/tilde.png", "tab\there.svg", "sub/rel.txt",
  "@macro.pdf" }
local lines = { 'local fm = require "fmnist"', "local names = {" }
for _, n in ipairs(odd_names) do lines[#lines + 1] = string.format("%q,", n) end
lines[#lines + 1] = "}"
lines[#lines + 1] = [[
for i, n in ipairs(names) do
  local ok, r = pcall(fm.plot.bar, { 1, 2 }, { title = "t", file = n })
  print(i, ok, ok and (r == n) or r)
end
print("run", pcall(fm.gnuplot.run, { terminal = "dumb", output = "|touch PWNED6", "plot x" }))
print("dir", pcall(fm.plot.bar, { 1 }, { file = "adir.png" }))
print("fifo", pcall(fm.plot.bar, { 1 }, { file = "fifo.png" }))
print("nope", pcall(fm.gnuplot.run, { terminal = "dumb", output = "nope.txt", "plot nope" }))
]]
T.write(names_dir .. "/names.lua", table.concat(lines, "\n"))
out = capture("cd " .. shell_quote(names_dir) .. " && TMPDIR=" .. shell_quote(names_tmp) .. " "
  .. shell_quote(host_abs) .. " names.lua")
for i, n in ipairs(odd_names) do
  local data = read(names_dir .. "/" .. n) or ""
  local want = ({ png = PNG_SIGNATURE, svg = "<?xml", txt = "\f", pdf = "%PDF-" })[n:match("%w+$")]
  T.ok(out:find("\n" .. i .. "\ttrue\ttrue\n", 1, true) or out:find("^" .. i .. "\ttrue\ttrue\n"),
    "the name '" .. n:gsub("\n", "\\n"):gsub("\t", "\\t") .. "' is accepted and returned as given")
  T.ok(data:sub(1, #want) == want, "and the figure is at exactly that path (" .. #data .. " bytes)")
end
local home = os.getenv("HOME") or "/root"
T.ok(read(home .. "/tilde.png") == nil, "'~/' is a directory named ~ here, not the home directory")
local ran = {}
for k = 1, 6 do
  if read(names_dir .. "/PWNED" .. k) or read(home .. "/PWNED" .. k) then ran[#ran + 1] = k end
end
T.eq(ran, {}, "no name ran a command (no marker file appeared)")
T.ok(out:find("run\ttrue\t|touch PWNED6", 1, true) and read(names_dir .. "/|touch PWNED6"),
  "gnuplot.run{output = '|touch ...'} writes a file of that name")
T.ok(out:find("dir\tfalse\tplot.bar: adir.png: cannot write a figure there (it is a directory)", 1,
  true), "a directory is refused before drawing")
if fifo_ok then
  T.ok(out:find("fifo\tfalse\tplot.bar: fifo.png: cannot write a figure there (not a regular file)",
    1, true), "a FIFO is refused (and nothing waits on it)")
else
  T.ok(true, "# SKIP mkfifo is not available here")
end
T.ok(out:find("nope\tfalse\tnope.txt: gnuplot: undefined variable: nope", 1, true),
  "a failed figure, too, with an error naming the file")
local leftovers = capture("ls -A " .. shell_quote(names_dir) .. " " .. shell_quote(names_dir .. "/sub")
  .. " " .. shell_quote(names_tmp))
T.ok(not leftovers:find(".tmp", 1, true) and not leftovers:find("fmnist-plot-", 1, true)
  and not leftovers:find("nope.txt", 1, true),
  "no temporary file beside the figures and no private directory left in TMPDIR")

-- ---- every user string is text ----
-- gnuplot reads explicit tic labels as formats, and enhanced text reads ^ _ @ { } & as markup:
-- both would change what is written, or read memory ("%s%s%n").
local function svg_texts(file)
  local texts = {}
  for t in (read(file) or ""):gmatch("<text[^>]*>(.-)</text>") do
    t = t:gsub("<[^>]*>", ""):gsub("&lt;", "<"):gsub("&gt;", ">"):gsub("&quot;", '"')
      :gsub("&apos;", "'"):gsub("&amp;", "&")
    texts[t] = true
  end
  return texts
end
local tricky = { "50% off", "%g", "%s%s%n", "a_b^c", "{x}@y&z", "%%", "100%", "~ \\n \\" }
local function all_there(texts, list, what)
  local missing = {}
  for _, t in ipairs(list) do if not texts[t] then missing[#missing + 1] = t end end
  T.eq(missing, {}, what .. ": every string drawn literally")
end
local lit = path("literal.svg")
fm.plot.bar({ { name = "%s%n", values = { 1, 2, 3, 4, 5, 6, 7, 8 } }, { name = "k_{ey}", values =
  { 2, 1, 2, 1, 2, 1, 2, 1 } } }, { labels = tricky, title = "%d title^2", xlabel = "x_%s",
  ylabel = "@ylabel", file = lit })
all_there(svg_texts(lit), { "50% off", "%g", "%s%s%n", "a_b^c", "{x}@y&z", "%%", "100%",
  "~ \\n \\", "%s%n", "k_{ey}", "%d title^2", "x_%s", "@ylabel" }, "bar: tic labels, keys, title, axes")
local txt_lit = path("literal.txt")
fm.plot.bar({ 1, 2, 3, 4 }, { labels = { "50% off", "%g", "%s%s%n", "a_b^c" }, size = { 120, 30 },
  file = txt_lit })
s = read(txt_lit) or ""
T.ok(s:find("50% off", 1, true) and s:find("%g", 1, true) and s:find("%s%s%n", 1, true)
  and s:find("a_b^c", 1, true), "bar as text: the tic labels as given")
fm.plot.heatmap(fm.tensor { { 1, 2 }, { 3, 4 } }, { row_labels = { "%d", "x%" },
  col_labels = { "%c", "_^" }, cblabel = "%e cb", title = "{t}", file = path("lit_heat.svg") })
all_there(svg_texts(path("lit_heat.svg")), { "%d", "x%", "%c", "_^", "%e cb", "{t}" }, "heatmap")
fm.plot.lines({ { name = "{x}", values = { 1, 2 } }, { name = "@y", values = { 2, 1 } } },
  { y2 = { "@y" }, y2label = "%n y2", title = "&lines", file = path("lit_lines.svg") })
all_there(svg_texts(path("lit_lines.svg")), { "{x}", "@y", "%n y2", "&lines" }, "lines")
fm.plot.scatter({ 1, 2, 3 }, { 1, 2, 3 }, { groups = { 0, 1, 1 }, labels = { "%s", "a_b" },
  file = path("lit_scatter.svg") })
all_there(svg_texts(path("lit_scatter.svg")), { "%s", "a_b" }, "scatter: key titles")
fm.plot.hist({ 1, 2, 2, 3 }, { title = "%%", xlabel = "^x", file = path("lit_hist.svg") })
all_there(svg_texts(path("lit_hist.svg")), { "%%", "^x" }, "hist")
fm.plot.images({ ten[1], ten[2] }, { captions = { "%g", "_b^c" }, cblabel = "{cb}",
  file = path("lit_images.svg") })
all_there(svg_texts(path("lit_images.svg")), { "%g", "_b^c", "{cb}" }, "images: captions")
T.err("plot.bar: option 'title' holds a zero byte", fm.plot.bar, { 1 }, { title = "a\0b" })
T.err("plot.bar: option 'labels': item 1 holds a zero byte", fm.plot.bar, { 1 }, { labels = { "\0" } })
T.err("gnuplot.quote: the text holds a zero byte", fm.gnuplot.quote, "a\0b")
T.eq(fm.gnuplot.quote("50% x", "format"), '"50%% x"', "quote(s, 'format') doubles %")
T.err("invalid option 'bogus'", fm.gnuplot.quote, "x", "bogus")

-- ---- a failed or partial figure never replaces a good one ----
local function check_kept(file, before, what)
  T.ok(before and read(file) == before, what .. ": the earlier file's bytes are exactly as they were")
end
-- gnuplot's error, and gnuplot dying in the middle of a figure.
local good = path("good.png")
fm.plot.bar({ 1, 2 }, { file = good })
local good_bytes = read(good)
T.err(good .. ": gnuplot: undefined variable: nope", fm.gnuplot.run,
  { terminal = "pngcairo", output = good, "plot nope" })
check_kept(good, good_bytes, "gnuplot's error")
T.err(good .. ": gnuplot exited while drawing", fm.gnuplot.run, { terminal = "pngcairo", output = good,
  "plot x", 'system "kill -9 $PPID"', "plot x" })
check_kept(good, good_bytes, "gnuplot killed halfway")
T.ok(pcall(fm.plot.bar, { 1 }, { file = path("after_kill.png") }), "and the next figure works")

-- A file size limit (RLIMIT_FSIZE, with SIGXFSZ ignored: writes fail as on a full disk) that the
-- figure's data fits in but its drawing does not. gnuplot does not say its writes failed.
local limit_dir = path("limit")
assert(os.execute("mkdir " .. shell_quote(limit_dir) .. " " .. shell_quote(limit_dir .. "/tmp")))
local limited = {}
for _, ext in ipairs({ "png", "svg", "txt" }) do
  local file = limit_dir .. "/fig." .. ext
  fm.plot.bar({ 1, 2 }, { file = file, size = ext == "txt" and { 40, 10 } or { 200, 150 } })
  limited[ext] = read(file)
end
T.write(limit_dir .. "/limited.lua", [[
local fm = require "fmnist"
fm.seed(1)
local m = fm.rand(30, 30)
for line in io.lines("/proc/self/limits") do
  if line:find("Max file size", 1, true) then print("limit", line:match("(%d+)")) end
end
for _, ext in ipairs({ "png", "svg", "txt" }) do
  print(ext, pcall(fm.plot.heatmap, m, { file = "fig." .. ext, size = ext == "txt" and { 200, 100 } or nil }))
end]])
-- 16 KB: 32 blocks of 512 bytes (dash), or 16 of 1024 (a shell that counts kilobytes).
for _, blocks in ipairs({ 32, 16 }) do
  out = capture("cd " .. shell_quote(limit_dir) .. " && TMPDIR=" .. shell_quote(limit_dir .. "/tmp")
    .. " sh -c 'ulimit -f " .. blocks .. " && trap \"\" XFSZ && exec \"$0\" limited.lua' "
    .. shell_quote(host_abs))
  if out:find("limit\t16384", 1, true) then break end
end
if not out:find("limit\t16384", 1, true) then
  T.ok(true, "# SKIP ulimit -f 32 did not limit files to 16 KB here: " .. out:sub(1, 200))
else
  for _, ext in ipairs({ "png", "svg", "txt" }) do
    T.ok(out:find(ext .. "\tfalse\tplot.heatmap: fig." .. ext .. ": ", 1, true),
      "a drawing cut by the limit: an error naming fig." .. ext .. " ("
        .. (out:match(ext .. "\tfalse\t([^\n]*)") or "none") .. ")")
    check_kept(limit_dir .. "/fig." .. ext, limited[ext], "fig." .. ext)
  end
  T.ok(out:find("not a complete SVG file", 1, true), "the SVG cut short is noticed (no </svg>)")
  leftovers = capture("ls -A " .. shell_quote(limit_dir) .. " " .. shell_quote(limit_dir .. "/tmp"))
  T.ok(not leftovers:find(".tmp", 1, true) and not leftovers:find("fmnist-plot-", 1, true),
    "nothing left behind (" .. leftovers:gsub("\n", " ") .. ")")
end

-- A full disk for real: a 64 KB tmpfs, when this system lets us mount one (root outside a
-- restricted container).
local function ls(d)
  local names = {}
  for name in capture("ls -A " .. shell_quote(d)):gmatch("[^\n]+") do names[#names + 1] = name end
  table.sort(names)
  return names
end
local mnt = path("mnt")
assert(os.execute("mkdir " .. shell_quote(mnt)))
local mount_out, mounted = capture("mount -t tmpfs -o size=64k tmpfs " .. shell_quote(mnt))
local function on_full_tmpfs()
  local prev = mnt .. "/fig.svg"
  fm.plot.bar({ 1, 2 }, { file = prev })
  local prev_bytes = read(prev)
  capture("dd if=/dev/zero of=" .. shell_quote(mnt .. "/filler") .. " bs=1024")
  fm.seed(1)
  local msg = T.err(prev .. ": ", fm.plot.heatmap, fm.rand(30, 30), { file = prev })
  T.ok(msg and (msg:find("No space left on device", 1, true) or msg:find("cannot write", 1, true)),
    "a full disk under the target: " .. tostring(msg))
  check_kept(prev, prev_bytes, "full disk")
  T.eq(ls(mnt), { "fig.svg", "filler" }, "no temporary file left on the full disk")
  -- The same disk as gnuplot's scratch space: its drawing is cut short.
  out = capture("TMPDIR=" .. shell_quote(mnt) .. " " .. shell_quote(host_abs) .. " -e "
    .. shell_quote("local fm = require 'fmnist'; fm.seed(1); print(pcall(fm.plot.heatmap, fm.rand(30, 30), "
      .. "{ file = '" .. path("scratch_full.svg") .. "' }))"))
  T.ok(out:find("false", 1, true) and out:find("scratch_full.svg", 1, true) or out:find("cannot write", 1, true),
    "a full scratch disk: an error (" .. out:gsub("%s+$", "") .. ")")
  T.ok(read(path("scratch_full.svg")) == nil, "and no file")
  -- A figure without data: gnuplot itself writes to the full disk, and says nothing about it.
  out = capture("TMPDIR=" .. shell_quote(mnt) .. " " .. shell_quote(host_abs) .. " -e "
    .. shell_quote("print(pcall(require('fmnist').gnuplot.run, { terminal = 'svg', output = '"
      .. prev .. "', 'set samples 5000', 'plot sin(x)' }))"))
  T.ok(out:find("false\t" .. prev .. ": gnuplot", 1, true),
    "gnuplot's drawing on a full disk: refused (" .. out:gsub("%s+$", "") .. ")")
  check_kept(prev, prev_bytes, "gnuplot drawing on a full disk")
  T.eq(ls(mnt), { "fig.svg", "filler" }, "nothing left on the scratch disk")
end
if not mounted then
  T.ok(true, "# SKIP cannot mount a tmpfs here (" .. mount_out:gsub("%s+$", "") .. ")")
else
  local tmpfs_ok, tmpfs_err = pcall(on_full_tmpfs)
  capture("umount " .. shell_quote(mnt)) -- also when a check above raised
  T.ok(tmpfs_ok, "the full-disk checks ran to the end (" .. tostring(tmpfs_err) .. ")")
end

-- ---- metamethods cannot reach what a figure uses ----
-- A data table whose __index serves the matrix, once big and then small: read twice, the second
-- tensor was written with the first one's size (a heap overflow AddressSanitizer saw).
do
  local calls = 0
  local block = setmetatable({ name = "$m" }, { __index = function(_, k)
    if k == "matrix" then
      calls = calls + 1
      collectgarbage("collect")
      return calls == 1 and fm.zeros(300, 300) or fm.zeros(1, 1)
    end
  end })
  ok = pcall(fm.gnuplot.run, { terminal = "dumb", block, "plot $m matrix with image" })
  T.ok(ok and calls == 1, "a data table's fields are read once (matrix read " .. calls .. " times)")
end
-- Finalizers that empty the columns while the figure is written and sent (the collector runs at
-- every allocation): the figure is drawn from the values as they were checked.
do
  local list, col = {}, {}
  for i = 1, 100 do list[i] = i end
  col[1] = list
  for _ = 1, 200 do setmetatable({}, { __gc = function() col[1] = nil; for i = 1, 100 do list[i] = nil end end }) end
  local printed = path("sum.txt")
  local pause = collectgarbage("setpause", 0)
  local stepmul = collectgarbage("setstepmul", 1000)
  ok = pcall(fm.gnuplot.run, { terminal = "dumb", { name = "$d", columns = col },
    "stats $d using 1 nooutput", "set print " .. fm.gnuplot.quote(printed),
    "print STATS_sum", "unset print", "plot $d" })
  collectgarbage("setpause", pause)
  collectgarbage("setstepmul", stepmul)
  T.ok(ok and read(printed) == "5050.0\n", "finalizers emptying the data: drawn from the checked "
    .. "values (sum " .. tostring(read(printed)):gsub("\n", "") .. ")")
end
-- The registry is reachable from Lua: the process object is kept on the stack while a figure
-- uses it, and a registry entry that is not the process is an error, not a crash.
do
  local reg = debug.getregistry()
  local saved = reg["fmnist.gnuplot.process"]
  reg["fmnist.gnuplot.process"] = {}
  T.err("gnuplot: registry[\"fmnist.gnuplot.process\"] is not the gnuplot process any more",
    fm.gnuplot.run, { terminal = "dumb", "plot x" })
  reg["fmnist.gnuplot.process"] = saved
  out = capture(host .. " -e " .. shell_quote([[
local fm = require "fmnist"
local reg = debug.getregistry()
fm.plot.bar({ 1 }, { file = "]] .. path("reg1.txt") .. [[" })
for _ = 1, 100 do setmetatable({}, { __gc = function() reg["fmnist.gnuplot.process"] = nil end }) end
collectgarbage("setpause", 0)
print("figure", pcall(fm.plot.bar, { 1, 2 }, { file = "]] .. path("reg2.txt") .. [[" }))]]))
  T.ok(out:find("figure	true", 1, true) or out:find("is not the gnuplot process any more", 1, true),
    "finalizers that drop the process from the registry mid-figure: drawn, or a clear error ("
      .. out:gsub("%s+$", "") .. ")")
end
T.err("unknown option 'titel'", fm.plot.bar, { 1, 2 }, setmetatable({ titel = "x" },
  { __pairs = function() return next, {}, nil end }))
T.err("plot.bar: no series given", fm.plot.bar, setmetatable({}, {
  __len = function() return 1e9 end, __index = function(_, i) return i end }))
T.err("plot.images: no images", fm.plot.images, setmetatable({}, {
  __len = function() return 2 end, __index = function() return fm.zeros(4, 4) end }))
do
  local imgs = { ten[1], ten[2], ten[3] }
  local opts = setmetatable({ file = path("gc_images.png") }, { __index = function()
    for i = #imgs, 1, -1 do imgs[i] = nil end
    collectgarbage("collect")
  end })
  T.err("plot.images: no images", fm.plot.images, imgs, opts)
end

-- ---- arguments ----
for _, size in ipairs({ { 0 / 0, 100 }, { 1.5, 100 }, { -1, 5 }, { 1e9, 5 }, { "800", 600 }, { math.huge, 5 } }) do
  T.err("option 'size' must be {width, height}: whole numbers", fm.plot.bar, { 1 },
    { size = size, file = path("s.png") })
end
T.err("a text figure of 5000x10 characters is larger than 2000x1000", fm.plot.bar, { 1 },
  { size = { 5000, 10 } })
T.err("option 'pointsize' must be a number above 0", fm.plot.scatter, { 1 }, { 1 }, { pointsize = 0 / 0 })
T.err("option 'range' must be {low, high}: finite numbers", fm.plot.hist, { 1, 2 }, { range = { 0, math.huge } })
T.err("option 'range' must be {low, high}: finite numbers", fm.plot.heatmap, cm, { range = { 0 / 0, 1 } })
T.err("option 'bins' must be an integer", fm.plot.hist, { 1, 2 }, { bins = math.huge })
T.err("option 'bins' must be 1..100000, got 0", fm.plot.hist, { 1, 2 }, { bins = 0 })
T.err("option 'bins' must be an integer, got 2.5", fm.plot.hist, { 1, 2 }, { bins = 2.5 })
T.err("option 'values' must be true or false, got string", fm.plot.bar, { 1 }, { values = "yes" })
T.err("values contain infinities; give range", fm.plot.hist, { 1, math.huge })
T.err("matrix holds NaN or infinities; give range", fm.plot.heatmap, { { 0 / 0, 1 } })
T.err("option 'groups' must hold finite numbers, got ", fm.plot.scatter, { 1, 2 }, { 1, 2 },
  { groups = { 0, 0 / 0 } })
T.err("series 1: x values must be finite", fm.plot.lines, { 1, 2 }, { x = { 1, math.huge } })
local forty = {}
for i = 1, 40 do forty[i] = ten[1] end
T.err("plot.images: the figure would be", fm.plot.images, forty, { cols = 40, cell = 1000,
  file = path("huge.png") })
T.err("the figure's data holds more than 16777216 values; draw a sample", fm.gnuplot.run,
  { terminal = "dumb", { name = "$m", matrix = fm.zeros(4096, 4097) }, "plot 1" })
T.err("gnuplot.run: unknown field outptu in the figure (known: terminal, output, timeout",
  fm.gnuplot.run, { terminal = "dumb", outptu = "x.txt", "plot x" })
T.err("terminal 'postscript' is not one whose figures can be checked (known: pngcairo",
  fm.gnuplot.run, { terminal = "postscript", "plot x" })
T.err("must be one plain command", fm.gnuplot.run, { terminal = "dumb; set output '|x'", "plot x" })
T.err("fig.output must be a file name (a string), got table", fm.gnuplot.run, { terminal = "dumb", output = {} })
T.err("fig.output is an empty file name", fm.gnuplot.run, { terminal = "dumb", output = "" })
T.err("fig.output holds a zero byte", fm.gnuplot.run, { terminal = "dumb", output = "a\0b" })
T.err("fig.timeout must be a positive number of seconds, got ", fm.gnuplot.run,
  { terminal = "dumb", timeout = 0 / 0, "plot x" })
T.err("fig.timeout must be a number of seconds, got string", fm.gnuplot.run,
  { terminal = "dumb", timeout = "5", "plot x" })
T.err("digits must be an integer from 1 to 17, got 2.5", fm.gnuplot.run,
  { terminal = "dumb", { name = "$d", digits = 2.5, columns = { { 1 } } } })
T.err("gnuplot.run: item 1 (data): unknown option 'colums'", fm.gnuplot.run,
  { terminal = "dumb", { name = "$d", colums = { { 1 } } } })
T.err("gnuplot.run: item 2 holds a zero byte", fm.gnuplot.run, { terminal = "dumb", "plot x", "a\0b" })
out = capture("FMNIST_GNUPLOT_TIMEOUT=abc " .. host .. " -e " .. shell_quote(
  [[print(pcall(require("fmnist").plot.bar, {1}, {file = "]] .. path("t.txt") .. [["}))]]))
T.ok(out:find("FMNIST_GNUPLOT_TIMEOUT must be a positive number of seconds, got 'abc'", 1, true),
  "a bad FMNIST_GNUPLOT_TIMEOUT is named")

-- ---- gnuplot that dies, hangs or is interrupted ----
-- A gnuplot whose input ends after the handshake (FMNIST_GNUPLOT a wrapper script).
local wrapper = path("dies.sh")
T.write(wrapper, "#!/bin/sh\nsed -u 2q | gnuplot \"$@\"\n")
os.execute("chmod +x " .. shell_quote(wrapper))
local dies_keep = path("dies.png")
fm.plot.bar({ 1 }, { file = dies_keep })
local dies_bytes = read(dies_keep)
out = capture("FMNIST_GNUPLOT=" .. shell_quote(wrapper) .. " " .. host .. " -e " .. shell_quote(
  [[print(pcall(require("fmnist").plot.bar, {1, 2}, {file = "]] .. dies_keep .. [["}))]]))
T.ok(out:find("false\tplot.bar: " .. dies_keep .. ": gnuplot exited while drawing", 1, true),
  "a gnuplot that dies mid-figure: an error (" .. out:gsub("%s+$", "") .. ")")
check_kept(dies_keep, dies_bytes, "gnuplot dying mid-figure")
-- A program that never answers, with a child: killed at the timeout, both gone.
local hang = path("hangs.sh")
local child_file = path("hang_child.pid")
T.write(hang, "#!/bin/sh\nsleep 600 &\necho $! > '" .. child_file .. "'\nwait\n")
os.execute("chmod +x " .. shell_quote(hang))
out = capture("FMNIST_GNUPLOT=" .. shell_quote(hang) .. " FMNIST_GNUPLOT_TIMEOUT=2 " .. host .. " -e "
  .. shell_quote([[print(pcall(require("fmnist").plot.bar, {1}, {file = "]] .. path("h.png") .. [["}))]]))
T.ok(out:find("did not answer within 2 s (killed)", 1, true), "a hanging program: killed at the timeout")
local child_pid = tonumber(read(child_file) or "")
local child_stat = child_pid and read("/proc/" .. child_pid .. "/stat")
-- SIGKILL is delivered asynchronously: give the kernel a moment (up to 10 s) to finish it.
for _ = 1, 100 do
  if not child_stat or child_stat:match("^%d+ %b() (%a)") == "Z" then break end
  capture("sleep 0.1")
  child_stat = read("/proc/" .. child_pid .. "/stat")
end
T.ok(child_pid and (not child_stat or child_stat:match("^%d+ %b() (%a)") == "Z"),
  "its child is killed with it (pid " .. tostring(child_pid) .. ")")
-- Ctrl-C while gnuplot draws: gnuplot stops (it would pause 30 s), the figure raises, nothing is
-- written, and the next figure works. gnuplot itself sends the SIGINT, so it arrives mid-figure.
local int_keep = path("int.png")
fm.plot.bar({ 1 }, { file = int_keep })
local int_bytes = read(int_keep)
local int_tmp = path("int-tmp")
assert(os.execute("mkdir " .. shell_quote(int_tmp)))
out = capture("TMPDIR=" .. shell_quote(int_tmp) .. " " .. host .. " -e " .. shell_quote([[
local fm = require "fmnist"
local me = io.open("/proc/self/stat"):read("n")
print("first", pcall(fm.gnuplot.run, { terminal = "pngcairo", output = "]] .. int_keep .. [[",
  "plot x", string.format('system "kill -INT %d"', me), "pause 30", "plot x" }))
print("pid", fm.gnuplot.pid())
print("second", pcall(fm.plot.bar, { 1, 2 }, { file = "]] .. path("after_int.png") .. [[" }))]]))
T.ok(out:find("first\tfalse\t" .. int_keep .. ": gnuplot: interrupted (gnuplot stopped; no file written)", 1, true),
  "Ctrl-C mid-figure: 'interrupted' (" .. out:gsub("%s+$", ""):gsub("\n", " | ") .. ")")
T.ok(out:find("pid\tnil", 1, true), "gnuplot was stopped")
T.ok(out:find("second\ttrue", 1, true), "the next figure works")
check_kept(int_keep, int_bytes, "an interrupted figure")
T.eq(capture("ls -A " .. shell_quote(int_tmp)), "", "no private directory left behind")

-- ---- a missing gnuplot ----
local missing = [[local fm = require "fmnist"
local ok, err = pcall(fm.plot.bar, {1, 2}, {file = "]] .. path("m.png") .. [["})
print(ok, err)]]
t0 = os.time()
out = capture("FMNIST_GNUPLOT=/nonexistent/gnuplot " .. host .. " -e " .. shell_quote(missing))
T.ok(out:find("false", 1, true) and out:find("gnuplot not found", 1, true)
  and out:find("install gnuplot-nox", 1, true),
  "a missing gnuplot: a clear error (" .. out:gsub("%s+$", "") .. ")")
out = capture("FMNIST_GNUPLOT=/bin/false " .. host .. " -e " .. shell_quote(missing))
T.ok(out:find("does not run as gnuplot", 1, true), "a program that is not gnuplot: a clear error")
out = capture("PATH=/nonexistent " .. host .. " -e " .. shell_quote(missing))
T.ok(out:find("gnuplot not found: install gnuplot-nox", 1, true), "gnuplot not on PATH")
T.ok(os.time() - t0 <= 10, "no hang")

-- ---- axes: whole-number x, flat ranges, log x, categories, styles ----
-- The commands of the last figure, and numbers read from one of them.
local function last_command(prefix)
  for _, c in ipairs(fm.plot._last_commands or {}) do
    if c:sub(1, #prefix) == prefix then return c end
  end
end
local function xrange()
  local c = last_command("set xrange [") or ""
  local a, b = c:match("^set xrange %[([^:]+):([^%]]+)%]")
  return tonumber(a), tonumber(b)
end
local function tic_places(axis)
  local c = last_command("set " .. axis .. " (") or ""
  local places = {}
  for label, at in c:gmatch('"([^"]*)" ([%-%d%.e]+)') do places[#places + 1] = label .. "@" .. at end
  return table.concat(places, " ")
end
do
  local loss, val = {}, {}
  for i = 1, 15 do loss[i], val[i] = 1 / i, 1.1 / i end
  local file = path("curve15.svg")
  fm.plot.lines({ { name = "training", values = loss }, { name = "validation", values = val } },
    { xlabel = "epoch", file = file })
  local a, b = xrange()
  T.near({ a, b }, { 0.72, 15.28 }, 1e-9, "15 epochs: the x axis is 1..15 with a margin of 2% (not 0..16)")
  T.eq(tic_places("xtics"), "1@1 2@2 3@3 4@4 5@5 6@6 7@7 8@8 9@9 10@10 11@11 12@12 13@13 14@14 15@15",
    "15 epochs: a tic on every epoch")
  local texts = svg_texts(file)
  T.ok(texts["15"] and texts["1"] and not texts["16"] and not texts["0"],
    "15 epochs: the SVG has tics 1 and 15, not 0 or 16")
  local fifty = {}
  for i = 1, 50 do fifty[i] = 1 / i end
  fm.plot.lines(fifty, { file = path("curve50.svg") })
  T.eq(tic_places("xtics"), "1@1 5@5 10@10 15@15 20@20 25@25 30@30 35@35 40@40 45@45 50@50",
    "50 epochs: tics every 5, and the first epoch")
  local trials, ids = {}, {}
  for i = 0, 36 do ids[#ids + 1], trials[#trials + 1] = i, i % 7 end
  fm.plot.lines({ { name = "score", values = trials, x = ids } }, { file = path("trials.svg") })
  T.eq(tic_places("xtics"), "0@0 5@5 10@10 15@15 20@20 25@25 30@30 36@36",
    "trials 0..36: the last one labelled in place of a tic too near it")
  a, b = xrange()
  T.near({ a, b }, { -0.72, 36.72 }, 1e-9, "trials 0..36: the range is theirs")
  fm.plot.lines({ 0.5, 0.25 }, { x = { 0.1, 0.35 }, file = path("frac.svg") })
  a, b = xrange()
  T.near({ a, b }, { 0.095, 0.355 }, 1e-6, "fractional x: the range is theirs with 2% on each side")
end

-- A flat range (one point, or every value the same) is drawn without a warning from gnuplot.
out = capture(host .. " -e " .. shell_quote([[local fm = require "fmnist"
print(fm.plot.lines({a = {0.5, 0.5, 0.5}}, {file = "]] .. path("flat.png") .. [["}))
print(fm.plot.lines({a = {2, 2}, b = {0.3, 0.3}}, {y2 = {"b"}, logy = true, file = "]] .. path("flat2.png") .. [["}))
print(fm.plot.scatter({1, 2, 3}, {0.8, 0.8, 0.8}, {file = "]] .. path("flat3.png") .. [["}))
print(fm.plot.scatter({3}, {0}, {file = "]] .. path("flat4.png") .. [["}))
print(fm.plot.scatter({2, 2}, {1, 5}, {logx = true, file = "]] .. path("flat5.png") .. [["}))]]))
T.ok(select(2, out:gsub("flat%d?%.png", "")) == 5 and not out:find("arning", 1, true),
  "flat ranges in lines and scatter: drawn without warnings (" .. out:gsub("%s+$", ""):gsub("\n", " | ") .. ")")
fm.plot.lines({ a = { 0.5, 0.5, 0.5 } }, { file = path("flat.svg") })
T.eq(last_command("set yrange"), "set yrange [0.45000000000000001:0.55000000000000004]",
  "lines, all y equal: a range 10% around the value")
fm.plot.scatter({ 3 }, { 0 }, { file = path("one.svg") })
T.eq(last_command("set yrange"), "set yrange [-1:1]", "scatter, one point at y = 0: y from -1 to 1")
local a1, b1 = xrange()
T.near({ a1, b1 }, { 2.7, 3.3 }, 1e-9, "and x 10% around it")

-- Values at the ends of float32 (what tensors hold): ranges around them stay drawable.
do
  local huge = {
    { "lines at x = 3e38", function(f) return fm.plot.lines({ 1, 2 }, { x = { 3e38, 3e38 }, file = f }) end },
    { "lines from -3.4e38 to 3.4e38", function(f) return fm.plot.lines({ 1, 2 }, { x = { -3.4e38, 3.4e38 }, file = f }) end },
    { "scatter at y = 3.4e38", function(f) return fm.plot.scatter({ 1, 2 }, { 3.4e38, 3.4e38 }, { file = f }) end },
    { "scatter of denormal x on a log axis", function(f)
      return fm.plot.scatter({ 1.5e-45, 3e-45 }, { 1, 2 }, { logx = true, file = f }) end },
    { "heatmap from -3e38 to 3e38", function(f) return fm.plot.heatmap({ { -3e38, 3e38 } }, { file = f }) end },
  }
  for i, case in ipairs(huge) do
    local file = path("huge" .. i .. ".png")
    local ok_h, err_h = pcall(case[2], file)
    T.ok(ok_h and err_h == file, case[1] .. ": drawn (" .. tostring(err_h) .. ")")
  end
  out = capture("NO_COLOR=1 " .. host .. " -e " .. shell_quote(
    "local fm = require 'fmnist'; fm.plot.heatmap({ { -3e38, 3e38 } }, { values = false }); print('done')"))
  T.ok(out:find("done\n$"), "a heatmap from -3e38 to 3e38 on a text terminal (" .. out:gsub("\n", "|") .. ")")
end

-- scatter: padding, log x, categories.
fm.plot.scatter({ 1, 2, 3 }, { 1, 4, 9 }, { file = path("pad.svg") })
a1, b1 = xrange()
T.near({ a1, b1 }, { 0.9, 3.1 }, 1e-9, "scatter: x from the least to the greatest with 5% on each side")
T.ok(last_command("set offsets 0, 0, graph 0.05, graph 0.05"), "and room above and below the points")
fm.plot.scatter({ 1e-4, 1e-3, 1e-2 }, { 0.8, 0.85, 0.83 }, { logx = true, xlabel = "lr",
  file = path("logx.svg") })
T.ok(last_command("set logscale x"), "logx: a logarithmic x axis")
a1, b1 = xrange()
T.near({ math.log(a1, 10), math.log(b1, 10) }, { -4.1, -1.9 }, 1e-6, "logx: 5% of the decades on each side")
local logx_texts = svg_texts(path("logx.svg"))
T.ok(logx_texts["0.0001"] and logx_texts["0.001"] and logx_texts["0.01"],
  "logx: the SVG has tics at powers of ten, written plainly")
T.err("plot.scatter: option 'logx': every x must be above 0, got 0", fm.plot.scatter, { 0, 1 }, { 1, 2 },
  { logx = true })
T.err("plot.scatter: option 'logy': every y must be above 0, got -1", fm.plot.scatter, { 1, 2 }, { -1, 2 },
  { logy = true })
T.err("option 'logx' must be true or false, got string", fm.plot.scatter, { 1 }, { 1 }, { logx = "yes" })
fm.plot.scatter({ 1, 2, 2, 3 }, { 0.8, 0.85, 0.86, 0.83 }, { categories = { "relu", "tanh", "%s_gelu" },
  file = path("cats.svg") })
T.eq(tic_places("xtics"):gsub(" %S+@3$", ""), "relu@1 tanh@2", "categories: each name at its place 1, 2, 3")
a1, b1 = xrange()
T.eq({ a1, b1 }, { 0.5, 3.5 }, "categories: half a place on each side")
all_there(svg_texts(path("cats.svg")), { "relu", "tanh", "%s_gelu" }, "scatter categories")
T.err("options 'categories' and 'logx' do not go together", fm.plot.scatter, { 1 }, { 1 },
  { categories = { "a" }, logx = true })
T.err("option 'categories' is empty", fm.plot.scatter, { 1 }, { 1 }, { categories = {} })

-- lines: a style per series.
fm.plot.lines({ { name = "trial", values = { 0.8, 0.7, 0.9 }, style = "points" },
  { name = "best so far", values = { 0.8, 0.8, 0.9 }, style = "lines" } }, { file = path("styles.svg") })
local plot_cmd = last_command("plot ") or ""
T.ok(plot_cmd:find("$line1 using 1:2 with points pt 7", 1, true)
  and plot_cmd:find("$line2 using 1:2 with lines lc 2", 1, true), "series styles: points, lines")
T.err('plot.lines: series 1: style must be "lines", "points" or "linespoints", got dots', fm.plot.lines,
  { { values = { 1 }, style = "dots" } })
T.err("plot.lines: series 1: unknown key 'colour' (known: name, style, values, x)", fm.plot.lines,
  { { values = { 1 }, colour = "red" } })

-- ---- category labels turned under their bars ----
do
  local file = path("turned.svg")
  fm.plot.bar({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, { labels = classes, file = file })
  local svgtext = read(file) or ""
  local under = 0
  for tic_x, label_x, anchor, name in svgtext:gmatch(
      "d='M([%d%.]+),[%d%.]+%s*'/>%s*<g transform=\"translate%(([%d%.]+),[%d%.]+%) rotate%(%-30%)\"[^>]-text%-anchor=\"(%a+)\">%s*<text>([^<]*)</text>") do
    local dx = tonumber(label_x) - tonumber(tic_x)
    if anchor == "end" and dx >= 0 and dx <= 10 then under = under + 1 end
    local _ = name
  end
  T.eq(under, 10, "ten long category names turned 30 degrees about their right end, at their tic")
end

-- ---- SVG images are drawn pixel by pixel (crisp), up to a size ----
do
  fm.plot.image(ten[1], { file = path("crisp.svg") })
  local svgtext = read(path("crisp.svg")) or ""
  local _, polygons = svgtext:gsub("<polygon fill = 'rgb%(", "")
  T.ok(polygons == 784 and not svgtext:find("<image", 1, true),
    "image in SVG: 784 pixels as polygons, no embedded PNG to blur (" .. polygons .. ")")
  fm.plot.heatmap(cm, { labels = classes, file = path("crisp_heat.svg") })
  svgtext = read(path("crisp_heat.svg")) or ""
  _, polygons = svgtext:gsub("<polygon fill = 'rgb%(", "")
  T.ok(polygons >= 100 and not svgtext:find("<image", 1, true),
    "heatmap in SVG: the cells (and the colour box) as polygons (" .. polygons .. ")")
  fm.plot.images({ ten[1], ten[2], ten[3] }, { captions = { "a", "b", "c" }, file = path("crisp_grid.svg") })
  svgtext = read(path("crisp_grid.svg")) or ""
  _, polygons = svgtext:gsub("<polygon fill = 'rgb%(", "")
  T.ok(polygons == 3 * 784 and not svgtext:find("<image", 1, true),
    "images in SVG: each image's pixels, the gaps left out (" .. polygons .. ")")
  local many = {}
  for i = 1, 90 do many[i] = ten[(i - 1) % #ten + 1] end
  fm.plot.images(many, { file = path("big_grid.svg") })
  svgtext = read(path("big_grid.svg")) or ""
  T.ok(svgtext:find("<image", 1, true) and #svgtext < 2e6,
    "90 images (70,560 pixels) in SVG: one embedded image, not megabytes of polygons (" .. #svgtext .. " bytes)")
  fm.plot.image(ten[1], { file = path("blurry_ok.png") })
  T.ok(last_command("plot "):find("with image notitle", 1, true), "PNG: gnuplot's own image")
end

-- ---- long titles are broken into lines that fit the figure ----
T.eq(fm.plot._wrap("the first three test images", 10), { "the first", "three test", "images" },
  "wrap: at spaces")
T.eq(fm.plot._wrap("abcdefghijklmnop qr\nst", 6), { "abcdef", "ghijkl", "mnop", "qr", "st" },
  "wrap: a long word is broken, line breaks kept")
T.eq(fm.plot._wrap("na\195\175ve na\195\175ve", 6), { "na\195\175ve", "na\195\175ve" }, "wrap: characters, not bytes")
T.err("plot._wrap: width must be a whole number from 1, got 0", fm.plot._wrap, "x.txt", 0)
T.err("plot._wrap: text must be a string, got nil", fm.plot._wrap, nil, 5)
do
  local long = "CNN: the test images it got wrong, with their true and predicted classes"
  local narrow = fm.load_png(fm.plot.images({ ten[1], ten[2] }, { title = long, file = path("narrow.png") }))
  T.ok(last_command("set title"):find("\\0012", 1, true), "a long title over two images: broken into lines")
  local short = fm.load_png(fm.plot.images({ ten[1], ten[2] }, { title = "CNN", file = path("short.png") }))
  T.ok(narrow:shape()[1] >= short:shape()[1] + 2 * 18 and narrow:shape()[2] == short:shape()[2],
    "and the figure taller by a line for each line more (" .. short:shape()[1] .. " -> " .. narrow:shape()[1] .. ")")
  fm.plot.lines({ 1, 2 }, { title = long .. " " .. long, file = path("wide_title.svg") })
  T.ok(last_command("set title"):find("\\0012", 1, true), "a title longer than 800 pixels: two lines")
  fm.plot.lines({ 1, 2 }, { title = long, file = path("ok_title.svg") })
  T.ok(not last_command("set title"):find("\\0012", 1, true), "a title that fits: one line")
end

-- ---- palettes are data, shared with fm.termimage ----
do
  local P = fm.plot.PALETTES
  local ti = require "fmnist.termimage"
  T.eq(P.viridis.stops[1], { 0, "#440154" }, "plot.PALETTES: stops {position, colour}")
  T.eq(ti.PALETTES, nil, "termimage keeps no copy of the palettes")
  P.test_red_blue = { stops = { { 0, "#ff0000" }, { 1, "#0000ff" } }, dark = "low" }
  T.eq({ ti.colour("test_red_blue", 0, 1, 0) }, { 255, 0, 0 }, "a palette added to plot.PALETTES: termimage draws with it")
  fm.plot.image(ten[1], { palette = "test_red_blue", file = path("red_blue.png") })
  T.eq(last_command("set palette"), 'set palette defined (0 "\\0043ff0000", 1 "\\00430000ff")',
    "and gnuplot too")
  P.test_red_blue = { stops = { { 0, "#ff0000" }, { 1, "red; system('x')" } } }
  T.err("plot.image: palette 'test_red_blue': stop 2 is not {position in [0, 1], \"#rrggbb\"}", fm.plot.image,
    ten[1], { palette = "test_red_blue", file = path("bad.png") })
  T.err("termimage.image: palette 'test_red_blue': stop 2 is not", ti.image, ten[1], { palette = "test_red_blue" })
  P.test_red_blue = nil
end

-- ---- images and matrices on a text terminal: drawn by fm.termimage ----
do
  local ESC = "\27"
  local function run(lua_code, env)
    return capture((env or "COLORTERM=truecolor COLUMNS=80 NO_COLOR= TERM=xterm") .. " " .. host .. " -e "
      .. shell_quote('local fm = require "fmnist"\n' .. lua_code))
  end
  out = run([[fm.plot.image(fm.tensor{{0, 1}, {1, 0.5}}, {title = "tiny"})]])
  local black, white, grey = "38;2;0;0;0m", "38;2;255;255;255m", "38;2;128;128;128m"
  local function fgbg(fg) return ESC .. "[" .. fg .. ESC .. "[" .. fg:gsub("^38", "48") end
  T.eq(out, "tiny\n"
    .. fgbg(black) .. "\u{2580}\u{2580}" .. fgbg(white) .. "\u{2580}\u{2580}" .. ESC .. "[0m\n"
    .. fgbg(white) .. "\u{2580}\u{2580}" .. fgbg(grey) .. "\u{2580}\u{2580}" .. ESC .. "[0m\n",
    "plot.image without a file: the title, then the image in half blocks (24-bit, two characters a pixel)")
  out = run([[local t = fm.load("test")
fm.plot.image(t:image(1))]])
  local _, blank = out:gsub("\n%s*\n", "")
  local _, blocks = out:gsub("\u{2580}", "")
  T.ok(blocks == 56 * 28 and blank == 0, "a 28x28 test image: 28 lines of 56 half blocks, no blank lines ("
    .. blocks .. " blocks)")
  out = run([[fm.plot.heatmap(fm.tensor{{9, 1}, {2, 18}}, {labels = {"Coat", "Shirt"}, title = "counts",
  xlabel = "predicted", ylabel = "true"})]], "NO_COLOR=1 COLUMNS=80")
  T.eq(out, table.concat({ "counts", "        0    1", " Coat   9    1 ", "Shirt   2   18 ",
    "columns: 0 Coat, 1 Shirt", "rows: true; columns: predicted" }, "\n") .. "\n",
    "plot.heatmap without a file: values in cells with the row names, columns numbered and named under")
  out = run([[fm.plot.heatmap(fm.tensor{{0, 1}, {2, 3}}, {values = false, cblabel = "w"})]])
  T.ok(out:find("^" .. ESC .. "%[38;2;247;251;255m" .. ESC .. "%[48;2;") and out:find("\n0 " .. ESC, 1, true)
    and out:find(" 3  w\n$"), "heatmap without values: the matrix as an image with its colour scale 0..3 ("
    .. out:gsub(ESC, "\\27") .. ")")
  out = run([[fm.plot.images({fm.zeros(8, 8), fm.ones(8, 8)}, {captions = {"true: a\npred: b", "c"}, title = "two"})]],
    "NO_COLOR=1 COLUMNS=80")
  T.eq(out, "two\n" .. ("         @@@@@@@@\n"):rep(4) .. "true: a  c\npred: b\n",
    "plot.images without a file: side by side, captions of several lines under them")
  out = run([[fm.plot.images({fm.zeros(2, 2)}, {captions = {"x"}, title = "a title too long for ten columns", size = {10, 5}})]],
    "NO_COLOR=1")
  T.eq(out, "a title\ntoo long\nfor ten\ncolumns\n  \nx\n", "the title broken to the width given")
  out = run([[print(pcall(fm.plot.image, fm.zeros(2, 2), {palette = "nope"}))]], "NO_COLOR=1")
  T.ok(out:find("false\tplot.image: unknown palette 'nope'", 1, true), "options are checked before drawing")
  out = run([[print(pcall(fm.plot.images, {fm.zeros(2, 2)}, {fontsize = 100}))
print(pcall(fm.plot.heatmap, fm.zeros(2, 2), {xlabel = {}}))
print(pcall(fm.plot.image, fm.zeros(2, 2), {size = {5000, 10}}))]], "NO_COLOR=1")
  T.eq(out, "false\tplot.images: option 'fontsize' must be 4..72, got 100\n"
    .. "false\tplot.heatmap: option 'xlabel' must be a string, got table\n"
    .. "false\tplot.image: a text figure of 5000 characters across is wider than 2000\n",
    "on a text terminal too, every option is checked, and nothing is drawn")
end

-- Nothing drawable: named by the plot, before gnuplot is asked (it would fail to scale an axis).
do
  local nan, out = 0 / 0, dir .. "/nothing.png"
  T.err("plot.scatter: no point to draw: none of the 3 points has a finite x and y", fm.plot.scatter,
    { nan, 1, nan }, { nan, nan, 2 }, { file = out })
  T.err("plot.bar: no bar to draw: every value is NaN or infinite", fm.plot.bar, { nan, nan },
    { file = out })
  T.err("plot.lines: no point to draw: every value on the y axis is NaN or infinite", fm.plot.lines,
    { { values = { nan, nan } } }, { file = out })
  T.err("plot.lines: no point to draw: every value on the y2 axis is NaN or infinite", fm.plot.lines,
    { { name = "a", values = { 1, 2 } }, { name = "b", values = { nan, nan } } },
    { y2 = { "b" }, file = out })
  T.eq(T.read(out), nil, "nothing drawable: no file written")
  T.eq(fm.plot.bar({ nan, 2 }, { file = out }), out, "a bar chart with a missing (NaN) bar is drawn")
end

T.done()
