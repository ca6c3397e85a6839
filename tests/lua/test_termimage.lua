-- fmnist.termimage: images in a plain terminal as half blocks (24-bit, 256 colours, or
-- characters), grids with captions, heatmaps with labels, sixel encoded and decoded back, and
-- the sixel fallback saying why. Exact bytes of small images are checked.
local T = require "testlib"
local fm = require "fmnist"
local ti = require "fmnist.termimage"

local ESC = "\27"
local UPPER, LOWER = "\u{2580}", "\u{2584}"

-- ---- 24-bit ----
local img = fm.tensor { { 0, 1 }, { 1, 0.5 } }
T.eq(ti.image(img, { colors = "24bit", scale = 1 }),
  ESC .. "[38;2;0;0;0m" .. ESC .. "[48;2;255;255;255m" .. UPPER
  .. ESC .. "[38;2;255;255;255m" .. ESC .. "[48;2;128;128;128m" .. UPPER .. ESC .. "[0m\n",
  "24-bit: the top pixel is the foreground, the bottom one the background, one line for two rows")
T.eq(ti.image(fm.tensor { { 1, 1 }, { 1, 1 } }, { colors = "24bit", scale = 1 }),
  ESC .. "[38;2;255;255;255m" .. ESC .. "[48;2;255;255;255m" .. UPPER .. UPPER .. ESC .. "[0m\n",
  "an escape only where the colour changes")
local odd = ti.image(fm.tensor { { 0 }, { 1 }, { 1 } }, { colors = "24bit", scale = 1 })
T.eq(odd, ESC .. "[38;2;0;0;0m" .. ESC .. "[48;2;255;255;255m" .. UPPER .. ESC .. "[0m\n"
  .. ESC .. "[38;2;255;255;255m" .. ESC .. "[49m" .. UPPER .. ESC .. "[0m\n",
  "an odd last row: the bottom half is the terminal's own background")
T.eq(ti.image(fm.tensor { { 0 / 0 }, { 1 } }, { colors = "24bit", scale = 1 }),
  ESC .. "[38;2;255;255;255m" .. ESC .. "[49m" .. LOWER .. ESC .. "[0m\n",
  "NaN is blank: only the bottom pixel, as a lower half block")
local scaled = ti.image(fm.tensor { { 1 } }, { colors = "24bit", scale = 2 })
local _, blocks = scaled:gsub(UPPER, "")
T.eq(blocks, 2, "scale 2: each pixel two characters wide and two half-rows high")
local magma = ti.image(fm.tensor { { 0 }, { 1 } }, { colors = "24bit", scale = 1, palette = "magma" })
T.ok(magma:find("[38;2;0;0;4m", 1, true) and magma:find("[48;2;252;253;191m", 1, true),
  "a palette maps the ends of the range to its ends")
local ranged = ti.image(fm.tensor { { 5 }, { 10 } }, { colors = "24bit", scale = 1, range = { 0, 10 } })
T.ok(ranged:find("[38;2;128;128;128m", 1, true), "range: 5 of 0..10 is the middle grey")
local own = ti.image(fm.tensor { { -1 }, { 3 } }, { colors = "24bit", scale = 1 })
T.ok(own:find("[38;2;0;0;0m", 1, true) and own:find("[48;2;255;255;255m", 1, true),
  "values outside [0, 1]: the range is their own")

-- ---- 256 colours ----
T.eq(ti.image(img, { colors = "256", scale = 1 }),
  ESC .. "[38;5;16m" .. ESC .. "[48;5;231m" .. UPPER .. ESC .. "[38;5;231m" .. ESC .. "[48;5;244m"
  .. UPPER .. ESC .. "[0m\n", "256 colours: black 16, white 231, grey from the grey ramp")
T.eq({ ti.xterm256(255, 0, 0), ti.xterm256(0, 0, 255), ti.xterm256(95, 135, 175), ti.xterm256(8, 8, 8) },
  { 196, 21, 67, 232 }, "xterm256: cube colours and the darkest grey")

-- ---- no colour ----
T.eq(ti.image(fm.tensor { { 0, 1, 0.5 }, { 0, 1, 0.5 } }, { colors = "none", scale = 1 }), " @+\n",
  "no colour: characters of growing ink, two rows averaged into one")

T.eq(ti.image(fm.tensor { { 0, 1, 0.5 }, { 0, 1, 0.5 } }, { colors = "none", scale = 1, palette = "gray_r" }), "@ +\n",
  "no colour, a reversed palette: ink for light, so high values are blank")
T.eq(ti.image(fm.tensor { { 0, 1 }, { 0, 1 } }, { colors = "none", scale = 1, palette = "magma" }), " @\n",
  "no colour, magma: ink from the luminance of the palette's colour")

-- ---- the palettes are fm.plot's ----
T.eq(ti.PALETTES, nil, "no copy of the palettes here")
T.eq({ ti.colour("blues", 0, 1, 1) }, { 8, 48, 107 }, "blues from plot.PALETTES: its last stop #08306b")
fm.plot.PALETTES.mine = { stops = { { 0, "#000000" }, { 1, "#00ff00" } } }
T.eq(ti.image(fm.tensor { { 1 }, { 0 } }, { colors = "24bit", scale = 1, palette = "mine" }),
  ESC .. "[38;2;0;255;0m" .. ESC .. "[48;2;0;0;0m" .. UPPER .. ESC .. "[0m\n", "a palette added to plot.PALETTES draws here")
fm.plot.PALETTES.mine = nil

-- ---- the terminal's width ----
do
  local host_bin = os.getenv("FMNIST_HOST") or "./fmnist-lua"
  local function cols_with(env)
    local p = io.popen(env .. " " .. host_bin .. " -e 'print(require(\"fmnist.termimage\").columns())' </dev/null")
    local out = p:read("a")
    p:close()
    return out
  end
  T.eq(cols_with("COLUMNS=123"), "123\n", "columns: COLUMNS without a terminal")
  T.eq(cols_with("COLUMNS=abc"), "80\n", "columns: 80 when COLUMNS is not a number")
end

-- ---- grids ----
local grid = ti.images({ fm.zeros(2, 2), fm.ones(2, 2), fm.zeros(2, 2) },
  { colors = "none", captions = { "a", "bb", "ccc" }, width = 5 })
T.eq(grid, "   @@\na  bb\n  \ncc\n",
  "images: as many as fit the width a row, captions under them (cut to the image's width)")
T.eq(ti.images({ fm.zeros(2, 4), fm.ones(2, 4) }, { colors = "none", captions = { "true: Coat\npred: Shirt\n87%", "b" },
  width = 20 }), "     @@@@\ntrue b\npred\n87%\n",
  "captions of several lines: one under the other, each cut to the image's width")
T.err("image 2 is 3x3, image 1 is 2x2", ti.images, { fm.zeros(2, 2), fm.zeros(3, 3) })
T.err("termimage.images: option 'width' must be a whole number 1..10000, got abc", ti.images,
  { fm.zeros(2, 2) }, { width = "abc" })
T.err("termimage.images: option 'cols' must be a whole number 1..10000, got 0", ti.images,
  { fm.zeros(2, 2) }, { cols = 0 })
T.err("termimage.image: option 'width' must be a whole number 1..10000, got 1.5", ti.image,
  fm.zeros(2, 2), { width = 1.5 })
T.err("termimage.heatmap: option 'digits' must be a whole number 0..10, got 11", ti.heatmap,
  fm.zeros(2, 2), { digits = 11 })
T.err("option 'captions' must be a list of 1 strings", ti.images, { fm.zeros(2, 2) }, { captions = {} })

-- ---- heatmap ----
local hm = ti.heatmap(fm.tensor { { 9, 1 }, { 2, 18 } }, { labels = { "Coat", "Shirt" }, colors = "none" })
T.eq(hm, table.concat({
  "        0    1",
  " Coat   9    1 ",
  "Shirt   2   18 ",
  "columns: 0 Coat, 1 Shirt" }, "\n") .. "\n",
  "heatmap: row names, column numbers, values in aligned cells, the names of the columns under")
local coloured = ti.heatmap(fm.tensor { { 0, 10 } }, { colors = "24bit" })
T.ok(coloured:find("[48;2;247;251;255m", 1, true) and coloured:find("[48;2;8;48;107m", 1, true)
  and coloured:find("[97m", 1, true) and coloured:find("[30m", 1, true),
  "heatmap in colour: blues, dark text on light cells and light on dark")
T.ok(ti.heatmap(fm.tensor { { 0.5 } }, { colors = "none" }):find("0.50", 1, true), "fractions with two decimals")

-- ---- errors ----
T.err("termimage.image: unknown option 'colour' (known: colors, palette, range, scale, width)",
  ti.image, img, { colour = "x" })
T.err("unknown palette 'rainbow' (known: binary, blues, diverging, gray, gray_r, magma, rdbu, viridis)",
  ti.image, img, { palette = "rainbow" })
T.err("option 'colors' must be \"24bit\", \"256\" or \"none\"", ti.image, img, { colors = "16" })
T.err("image must be a 2-D tensor or a 1-D one of square length", ti.image, fm.zeros(3))
T.err("image must be a tensor, got table", ti.image, { { 1 } })
T.err("option 'range' must be {low, high} with low < high", ti.image, img, { range = { 1, 1 } })
T.err("option 'scale' must be a whole number 1..16", ti.image, img, { scale = 0 })

-- ---- sixel: encode, then decode and compare pixel by pixel ----
-- A decoder of the subset termimage writes: colour definitions #i;2;r;g;b, #i selects, !n runs,
-- $ back to the band's start, - next band.
local function decode(s)
  local body = s:match("^" .. ESC .. "P0;1;0q(.*)" .. ESC .. "\\$")
  assert(body, "not a sixel string")
  local w, h = body:match('^"1;1;(%d+);(%d+)')
  w, h = tonumber(w), tonumber(h)
  body = body:gsub('^"1;1;%d+;%d+', "")
  local colours, px = {}, {}
  for y = 1, h do px[y] = {} end
  local band, x, current = 0, 1, nil
  local i = 1
  while i <= #body do
    local c = body:sub(i, i)
    if c == "#" then
      local def = body:match("^#(%d+);2;(%d+);(%d+);(%d+)", i)
      if def then
        local n, r, g, b = body:match("^#(%d+);2;(%d+);(%d+);(%d+)", i)
        colours[tonumber(n)] = { tonumber(r), tonumber(g), tonumber(b) }
        i = i + #body:match("^#%d+;2;%d+;%d+;%d+", i)
      else
        local n = body:match("^#(%d+)", i)
        current = tonumber(n)
        i = i + 1 + #n
      end
    elseif c == "!" then
      local n, ch = body:match("^!(%d+)(.)", i)
      for _ = 1, tonumber(n) do
        local bits = ch:byte() - 63
        for dy = 0, 5 do
          if bits & (1 << dy) ~= 0 and px[band * 6 + dy + 1] then px[band * 6 + dy + 1][x] = current end
        end
        x = x + 1
      end
      i = i + 2 + #n
    elseif c == "$" then
      x, i = 1, i + 1
    elseif c == "-" then
      band, x, i = band + 1, 1, i + 1
    else
      local bits = c:byte() - 63
      for dy = 0, 5 do
        if bits & (1 << dy) ~= 0 and px[band * 6 + dy + 1] then px[band * 6 + dy + 1][x] = current end
      end
      x, i = x + 1, i + 1
    end
  end
  return w, h, px, colours
end

local pic = fm.tensor { { 0, 1, 1, 1, 1, 1, 0 }, { 1, 0, 0, 0, 0, 0, 1 }, { 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5 },
  { 0, 0, 0, 0, 0, 0, 0 }, { 1, 1, 1, 1, 1, 1, 1 }, { 0, 1, 0, 1, 0, 1, 0 }, { 1, 0, 1, 0, 1, 0, 1 } }
local six = ti.sixel(pic, { scale = 1 })
local w, h, px, colours = decode(six)
T.eq({ w, h }, { 7, 7 }, "sixel: raster attributes give the size")
local rows = pic:totable()
local same = true
for y = 1, 7 do
  for x = 1, 7 do
    local c = colours[px[y][x]]
    local want = math.floor(math.floor(rows[y][x] * 63 + 0.5) / 63 * 255 + 0.5) * 100 // 255
    if not c or math.abs(c[1] - want) > 1 then same = false end
  end
end
T.ok(same, "sixel decodes back to the image, pixel by pixel (two bands, runs, several colours)")
T.ok(six:find("!", 1, true) ~= nil, "sixel compresses runs")
local big = ti.sixel(fm.ones(2, 2), { scale = 3 })
T.eq({ decode(big) }, { 6, 6, select(3, decode(big)), select(4, decode(big)) }, "sixel scale 3: 6x6")

-- ---- show: sixel only where the terminal says so, else blocks and a word why ----
ti._set_sixel_support(false)
local host = os.getenv("FMNIST_HOST") or "./fmnist-lua"
local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local dir = T.tmpdir()
local p = io.popen(("FMNIST_PLOT=sixel %s -e %s 2>%s </dev/null"):format(shell_quote(host),
  shell_quote("local fm = require 'fmnist'; local ti = require 'fmnist.termimage'; "
    .. "ti.show(fm.zeros(2, 2), {colors = 'none', scale = 1}); ti.show(fm.zeros(2, 2), {colors = 'none', scale = 1})"),
  shell_quote(dir .. "/err")))
local out = p:read("a")
p:close()
local err = T.read(dir .. "/err") or ""
T.eq(out, "  \n  \n", "FMNIST_PLOT=sixel without a sixel terminal: the image in text blocks")
T.ok(err:find("FMNIST_PLOT=sixel: this terminal does not say it shows sixel graphics", 1, true),
  "and a word on stderr saying why")
local _, times = err:gsub("FMNIST_PLOT=sixel", "")
T.eq(times, 1, "said once, not for every image")
T.eq(ti.sixel_supported(), false, "no terminal here: no sixel")
T.eq(ti.sixel_wanted(false), false, "sixel_wanted: not asked for, not wanted")
ti._set_sixel_support(true)
T.eq(ti.sixel_wanted(true), true, "sixel_wanted: asked for, and the terminal shows it")
ti._set_sixel_support(false)

T.done()
