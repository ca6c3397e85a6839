-- `fmnist-lua predict`: a CNN trained here briefly (10,000 training images, 2 epochs, seed 1:
-- about 2.5 s on two cores, 83% on the test set) classifies three drawn pictures written as real
-- PNG files (tests/lua/drawings.lua: an RGB trouser on a light background, an RGBA bag on a
-- transparent one, a 300 x 200 grey sneaker), and the command's options, output formats, exit
-- statuses and error messages are checked.
local T = require "testlib"
local D = require "drawings"
local W = require "pngwrite"
local fm = require "fmnist"

local host = os.getenv("FMNIST_HOST") or "./fmnist-lua"
local dir = T.tmpdir()
local function path(name) return dir .. "/" .. name end
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- `fmnist-lua predict ARGS` as a user runs it. When this host does not dispatch commands, the
-- same module runs through tests/lua/cmd_runner.lua (which does what the host's dispatch does),
-- and the check of the dispatch itself is reported as skipped.
local prefix = host .. " predict"
do
  local _, _, code = os.execute(prefix .. " --help >" .. q(path("help")) .. " 2>&1")
  local help = T.read(path("help")) or ""
  if code == 0 and help:find("usage: fmnist-lua predict", 1, true) then
    T.ok(true, "fmnist-lua predict runs the embedded fmnist.cmd_predict")
  else
    T.ok(true, "fmnist-lua predict runs the embedded fmnist.cmd_predict # SKIP the host does "
      .. "not dispatch commands (it said: " .. help:gsub("\n.*", "") .. "); testing through "
      .. "cmd_runner.lua")
    prefix = host .. " tests/lua/cmd_runner.lua predict"
  end
end

-- Runs the command; returns stdout, stderr and the exit status.
local function predict(args, env)
  local out, err = path("stdout"), path("stderr")
  local _, _, code = os.execute((env or "") .. " " .. prefix .. " " .. args .. " >" .. q(out)
    .. " 2>" .. q(err))
  return T.read(out) or "", T.read(err) or "", code
end

-- ---- the model ----
local train = fm.load("train")
local fit = train:split(10000 / #train, { seed = 1, stratify = true })
local model = fm.CNN { seed = 1 }
local t0 = fm.clock()
model:fit(fit, { epochs = 2, seed = 1, verbose = false })
print(("# trained on %d images for 2 epochs in %.1f s"):format(#fit, fm.clock() - t0))
local model_file = path("cnn.fmn")
model:save(model_file)

-- ---- the pictures ----
local pics = D.write_all(dir)
local files = {}
for i, p in ipairs(pics) do files[i] = q(p.path) end

local out, err, code = predict(q(model_file) .. " " .. table.concat(files, " "))
T.eq(code, 0, "exit status 0 when every picture is classified")
T.eq(err, "", "nothing on stderr")
for _, p in ipairs(pics) do
  local line = out:match("[^\n]*" .. p.name .. "%.png: [^\n]*")
  local first = line and line:match("%.png: ([^,]+)")
  T.eq(first and first:match("%(class (%d+)%)"), tostring(p.class),
    ("%s: first answer is class %d (%s): %s"):format(p.name, p.class, fm.class_name(p.class),
      tostring(line)))
  local pct = {}
  for v in (line or ""):gmatch("(%d+%.%d)%%") do pct[#pct + 1] = tonumber(v) end
  T.eq(#pct, 3, p.name .. ": three classes by default")
  T.ok(pct[1] and pct[1] >= pct[2] and pct[2] >= pct[3] and pct[1] > 50,
    p.name .. ": probabilities in decreasing order, the first above 50%")
end

-- ---- JSON ----
out, err, code = predict("--json --top 2 " .. q(model_file) .. " " .. files[1] .. " "
  .. q(path("missing.png")))
T.eq(code, 1, "--json: exit status 1 when a picture fails")
T.ok(err:find("fmnist-lua predict: " .. path("missing.png") .. ": cannot open", 1, true),
  "--json: the missing file is named on stderr")
T.eq(select(2, out:gsub("\n", "")), 1, "--json: one line, one document")
T.ok(out:match('^{"images":%[{"class":1,"file":"[^"]*trouser%.png","name":"Trouser",'),
  "--json: the trouser's class, file and name come first: " .. out:sub(1, 80))
T.ok(out:find('"top":[{"class":1,"name":"Trouser","probability":0.', 1, true),
  "--json: top classes with probabilities")
local top = out:match('"top":(%b[])')
T.eq(top and select(2, top:gsub('"class":', "")), 2, "--json --top 2: two classes")
T.ok(out:find('"inverted":true', 1, true), "--json: what preparation found")
T.ok(out:find('{"error":"' .. path("missing.png") .. ': cannot open (No such file or directory)","file":"'
  .. path("missing.png") .. '"}', 1, true), "--json: the failed file with its error")
T.ok(out:find('"ok":false}$') or out:find('"ok":false}\n$'), "--json: ok is false")

-- ---- --show ----
out, err, code = predict("--show " .. q(model_file) .. " " .. files[3], "COLORTERM=truecolor")
T.eq(code, 0, "--show: exit status 0")
local lines = {}
for l in out:gmatch("[^\n]*") do if l ~= "" then lines[#lines + 1] = l end end
T.eq(#lines, 14, "--show: 14 text lines for 28 pixel rows")
local _, blocks = lines[10]:gsub("\u{2580}", "")
T.eq(blocks, 28, "--show: 28 upper-half blocks a line")
T.ok(lines[10]:find("\27[38;2;", 1, true) and lines[10]:find("\27[48;2;", 1, true),
  "--show: 24-bit foreground and background when COLORTERM says truecolor")
T.ok(lines[1]:find("\27[38;2;0;0;0m\27[48;2;0;0;0m", 1, true), "--show: the canvas is black")
T.ok(lines[1]:find("sneaker.png", 1, true) and lines[2]:find("1. Sneaker", 1, true),
  "--show: the file name and the answer beside the picture")
out = predict("--show " .. q(model_file) .. " " .. files[3], "COLORTERM=")
T.ok(out:find("\27[38;5;16m\27[48;5;16m\u{2580}", 1, true), "--show: 256 colours otherwise")

-- ---- options ----
out, err, code = predict("--help")
T.eq(code, 0, "--help: exit status 0")
T.ok(out:find("usage: fmnist-lua predict [options] MODEL IMAGE...", 1, true), "--help: usage")
out, err, code = predict("--frobnicate " .. q(model_file) .. " " .. files[1])
T.eq(code, 2, "an unknown option: exit status 2")
T.ok(err:find("unknown option '--frobnicate'", 1, true), "an unknown option is named")
T.eq(out, "", "an unknown option: nothing is classified")
out, err, code = predict("--top 11 " .. q(model_file) .. " " .. files[1])
T.eq(code, 2, "--top 11: exit status 2")
T.ok(err:find("--top must be a whole number from 1 to 10, got '11'", 1, true), "--top 11 is refused, saying why")
_, err, code = predict("--top")
T.ok(code == 2 and err:find("option --top needs a value", 1, true), "--top without a value")
_, err, code = predict("--json=yes " .. q(model_file) .. " " .. files[1])
T.ok(code == 2 and err:find("option --json takes no value", 1, true), "--json=yes is refused")
_, err, code = predict("--invert sometimes " .. q(model_file) .. " " .. files[1])
T.ok(code == 2 and err:find("--invert must be auto, yes or no, got 'sometimes'", 1, true),
  "--invert sometimes is refused")
_, err, code = predict("")
T.ok(code == 2 and err:find("no model and no image given", 1, true), "no arguments: usage error")
_, err, code = predict(q(model_file))
T.ok(code == 2 and err:find("no image given", 1, true), "a model and no image: usage error")
out, err, code = predict("--top=1 --margin 2 -- " .. q(model_file) .. " " .. files[1])
T.eq(code, 0, "--top=1 --margin 2 --")
T.ok(out:find("trouser.png: Trouser (class 1) ", 1, true) and not out:find(",", 1, true),
  "--top=1: one class")

-- ---- bad files: named, and the others still classified ----
T.write(path("text.png"), "not a picture")
W.write(path("blank.png"), { width = 40, height = 30, color = "rgb",
  pixel = function() return 0.8, 0.8, 0.8 end })
out, err, code = predict(q(model_file) .. " " .. q(path("text.png")) .. " " .. files[2] .. " "
  .. q(path("blank.png")) .. " " .. q(path("nope.png")))
T.eq(code, 1, "bad files: exit status 1")
T.ok(out:find("bag.png: Bag (class 8)", 1, true), "bad files: the good picture is classified")
T.ok(err:find(path("text.png") .. ": not a PNG file", 1, true), "a text file is named")
T.ok(err:find(path("blank.png") .. ": no object: every pixel is within 0.1 of the background", 1,
  true), "a blank picture is named: nothing to classify")
T.ok(err:find(path("nope.png") .. ": cannot open (No such file or directory)", 1, true),
  "a missing file is named")
_, err, code = predict(q(path("nope.fmn")) .. " " .. files[1])
T.eq(code, 1, "a missing model: exit status 1")
T.ok(err:find(path("nope.fmn"), 1, true), "a missing model is named")
local esc = path("a\27[31mred.png")
_, err = predict(q(model_file) .. " " .. q(esc))
T.ok(err:find("a?[31mred.png", 1, true) and not err:find("\27", 1, true),
  "control characters in a file name are not sent to the terminal")

T.done()
