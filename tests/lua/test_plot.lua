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
out = capture("FMNIST_PLOT=sixel " .. host .. " -e " .. shell_quote(code))
T.ok(out:sub(1, 3) == "\27Pq" and out:find("\27\\", 1, true),
  "FMNIST_PLOT=sixel: sixel graphics on stdout")

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

T.done()
