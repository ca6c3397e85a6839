-- Notebooks in cells and their reports: the capture of what a cell writes (C code's stderr and
-- child processes too, in order), failed and skipped cells, tables and figures in the HTML and
-- Markdown, what the report records, Ctrl-C in a cell and during training, the values left for
-- `-i`, and two --quick reports of the CNN notebook identical but for times and dates.
local T = require "testlib"
local fm = require "fmnist"

local host = os.getenv("FMNIST_HOST") or "./fmnist-lua"
local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function has(s, text) return s:find(text, 1, true) ~= nil end
local dir = T.tmpdir()

-- Runs the host with shell words; returns stdout, stderr, exit status.
local function run(words, input)
  local errname, inname = dir .. "/stderr", dir .. "/stdin"
  T.write(inname, input or "")
  local p = io.popen(("%s %s <%s 2>%s"):format(shell_quote(host), words, shell_quote(inname), shell_quote(errname)))
  local out = p:read("a")
  local _, _, status = p:close()
  return out, T.read(errname) or "", status
end

-- A small IDX dataset of n images, labels cycling 0..9, so that fit runs in no time.
local function idx(path, n)
  local px, lb = {}, {}
  for i = 1, n do
    px[i] = string.rep(string.char((i * 37) % 256), 784)
    lb[i] = string.char((i - 1) % 10)
  end
  T.write(path .. "-images-idx3-ubyte", string.pack(">I4>I4>I4>I4", 0x803, n, 28, 28) .. table.concat(px))
  T.write(path .. "-labels-idx1-ubyte", string.pack(">I4>I4", 0x801, n) .. table.concat(lb))
  return path .. "-images-idx3-ubyte"
end
local small = idx(dir .. "/small", 64)

-- ---- the capture: file descriptors 1 and 2, in order ----
do
  local out = run("-e " .. shell_quote(([[
local fm = require "fmnist"
local capture = require "fmnist.capture"
capture.start(false)
print("before")
io.write("no newline ")
io.stderr:write("to stderr\n")
os.execute("echo from a child; echo child stderr >&2")
local m = fm.LogReg{}
m:fit(fm.load(%q), {epochs = 1, seed = 1})
local text = capture.stop()
print(capture.level())
io.write(text)
]]):format(small)))
  local level, text = out:match("^(%a+)\n(.*)$")
  T.eq(level, "all", "inside fmnist-lua the capture takes the file descriptors")
  T.ok(text and text:find("^before\nno newline to stderr\nfrom a child\nchild stderr\nEpoch 1/1 "),
    "print, io.write, stderr, a child process and fit's C progress line, in the order written: "
    .. tostring(text):gsub("\n", "|"))
end

-- ---- a notebook of cells, for a report ----
local nb_script = dir .. "/cells.lua"
T.write(nb_script, ([[
local fm = require "fmnist"
nb = require("fmnist.notebook").new("cells", arg, {title = "Cells <&> test", about = "A notebook to test."})
if not nb then return end
nb:cell("Print and a table", function()
  print("hello from cell 1")
  nb:table({{"name", "%%s"}, {"value", "%%.2f"}, {"seconds", "%%.1f", volatile = true}},
    {{"a <b>", 1.5, 0.25}, {"c", 2, 3}}, {caption = "numbers"})
  nb:say("A paragraph that explains.")
  made = 7
end)
nb:cell("A figure", function()
  nb:figure(fm.plot.bar({3, 1, 2}, {labels = {"x", "y", "z"}, file = nb:path("bars.png")}), "three bars")
end)
nb:cell("This one fails", function()
  print("about to fail")
  local t = nil
  wanted = t.field
end)
nb:cell("Needs what failed", {needs = {"wanted"}}, function() print("never") end)
nb:cell("Uses it anyway", function() print(wanted.x) end)
nb:cell("Still runs", function()
  local m = fm.LogReg{}
  m:fit(fm.load(%q), {epochs = 1, seed = 1})
  print("made is " .. made)
end)
nb:finish()
]]):format(small))

do
  local rep = dir .. "/rep1"
  local out, err, status = run(shell_quote(nb_script) .. " --report " .. shell_quote(rep) .. " --format png")
  T.eq(status, 1, "a notebook with a failed cell ends with status 1")
  T.ok(has(err, "cells.lua: 1 of 6 cells failed: cell 3 'This one fails'"), "and says which cell failed")
  T.ok(has(out, "hello from cell 1") and has(out, "made is 7"), "the cells' output is shown as they run")
  T.ok(has(out, "6. Still runs") and has(out, "Epoch 1/1"), "the cells after the failed one run")
  T.ok(has(out, "Report: " .. rep .. "/index.html and " .. rep .. "/index.md"), "the report's files are named")
  local html = T.read(rep .. "/index.html") or ""
  local md = T.read(rep .. "/index.md") or ""
  T.ok(html:find("^<!DOCTYPE html>") and html:find("</html>\n$"), "index.html is a whole page")
  T.ok(has(html, "<title>Cells &lt;&amp;&gt; test</title>"), "text is escaped for HTML")
  T.ok(not html:find("<script", 1, true) and not html:find("src=\"http", 1, true) and not html:find("href=\"http", 1, true),
    "nothing in it needs a script or the network")
  T.ok(has(html, '<pre class="output">hello from cell 1</pre>'), "a cell's printed output")
  T.ok(has(html, '<caption>numbers</caption>') and has(html, '<td>a &lt;b&gt;</td><td class="num">1.50</td>'),
    "a table as an HTML table, numbers right-aligned")
  T.ok(has(html, '<td class="num volatile">0.2</td>'), "volatile cells are marked")
  T.ok(not has(html, "name   value"), "the table's terminal text is not repeated as output")
  T.ok(has(html, "<p>A paragraph that explains.</p>"), "nb:say is prose")
  local b64 = html:match('<img src="data:image/png;base64,([^"]+)" alt="three bars">')
  local png = T.read(rep .. "/bars.png")
  T.ok(b64 and png and b64 == fm.report.base64(png), "the figure is embedded: the file's bytes as base64")
  T.ok(has(html, 'class="status failed">failed</span>') and has(html, "attempt to index a nil value (local 't')")
    and has(html, "stack traceback:"), "the failed cell is shown with its error and traceback")
  T.ok(has(html, "about to fail"), "and what it printed before failing")
  T.ok(has(html, "Not run: it needs &#39;wanted&#39;") or has(html, "Not run: it needs 'wanted'"),
    "a cell needing what failed is skipped, saying why")
  T.ok(has(html, "Not run to the end: it needs 'wanted', which a failed cell was to make"),
    "a cell failing on a global a failed cell was to make is marked skipped")
  T.ok(has(html, "Epoch 1/1 "), "fit's progress line, written by C to stderr, is in the report")
  for _, fact in ipairs { "command", "date", "duration", "fmnist", "git commit", "Lua", "gnuplot", "OpenBLAS",
    "compiler", "CPU", "SIMD", "threads", "seeds" } do
    T.ok(has(html, "<tr><td>" .. fact .. "</td>"), "the report records: " .. fact)
  end
  T.ok(html:find("<tr><td>compiler</td><td>[gc][cl][ca]?n?g? ") ~= nil, "the compiler is named")
  T.ok(html:find("<tr><td>threads</td><td>%d+") ~= nil, "the thread count")
  T.ok(has(html, "<tr><td>--format</td><td>png (given; default png)</td></tr>")
    and has(html, "<tr><td>--seed</td><td>1 (default)</td></tr>"), "the parameters: defaults and what was given")
  if pcall(fm.load, "test") then
    T.ok(html:find("t10k%-images%-idx3%-ubyte[^<]*</td><td class=\"num\">%d+</td><td>%x%x%x%x%x%x%x%x") ~= nil,
      "the dataset files with their size and sha256")
  else
    T.ok(true, "# SKIP the dataset files (Fashion-MNIST is not installed)")
  end
  T.ok(has(md, "![three bars](bars.png)"), "index.md has the figure beside it, by a relative path")
  T.ok(has(md, "| name | value | seconds |\n|---|---:|---:|\n| a <b> | 1.50 | 0.2 |"), "index.md tables")
  T.ok(has(md, "### 3. This one fails [failed]"), "index.md marks the failed cell")
end

-- ---- SVG figures are inline, their ids made unique ----
do
  local rep = dir .. "/rep-svg"
  run(shell_quote(nb_script) .. " --report " .. shell_quote(rep) .. " --format svg --cells 2")
  local html = T.read(rep .. "/index.html") or ""
  T.ok(has(html, "<figure><svg") and not has(html, "<?xml"), "an SVG figure is inline in the page")
  local ids, dup = {}, false
  for id in html:gmatch(' id="([^"]+)"') do
    if ids[id] then dup = true end
    ids[id] = true
  end
  T.ok(not dup and has(html, 'id="cells-2-f1-gnuplot_canvas"'), "the SVG's ids are prefixed with the cell's")
  T.ok(has(html, "image-rendering: pixelated"), "images in SVGs are drawn without blur")
end

-- ---- fmnist-lua report over two notebooks ----
do
  local other = dir .. "/other.lua"
  T.write(other, [[
nb = require("fmnist.notebook").new("other", arg, {title = "Other"})
if not nb then return end
nb:cell("Only", function() print("seed is " .. nb.o.seed) end)
nb:finish()
]])
  local rep = dir .. "/rep2"
  local out, err, status = run("report -o " .. shell_quote(rep) .. " " .. shell_quote(other) .. " --seed 5 "
    .. shell_quote(nb_script) .. " --cells 1")
  T.eq(status, 0, "fmnist-lua report over two notebooks: status 0 when every cell ran")
  T.ok(has(out, "seed is 5"), "each notebook gets its own arguments")
  local html = T.read(rep .. "/index.html") or ""
  T.ok(has(html, 'id="other"') and has(html, 'id="cells"') and has(html, "Parameters of"),
    "one report with a section for each notebook")
  T.ok(has(html, "<tr><td>seeds</td><td>other 5, cells 1</td></tr>"), "the seeds of both")
  T.ok(html:find("<tr><td>command</td><td>[^<]*fmnist%-lua report %-o [^<]*other%.lua %-%-seed 5 [^<]*cells%.lua %-%-cells 1</td>"),
    "the command line as typed")
  T.ok(T.read(rep .. "/cells/index.html") == nil, "the notebooks write into DIR/NAME, the report only into DIR")
  T.ok(has(html, "Not run: --cells 1 leaves it out"), "cells left out are said to be")
end

-- ---- Ctrl-C ----
-- The notebook says when it spins, so that the signal never comes before the cell runs.
local function interrupt(script, args, marker, report)
  local outname, errname = dir .. "/int.out", dir .. "/int.err"
  local cmd = ("%s %s %s >%s 2>%s & pid=$!; i=0; until grep -q %s %s %s || [ $i -ge 400 ]; do sleep 0.05; "
    .. "i=$((i+1)); done; kill -INT $pid; wait $pid; echo $?"):format(shell_quote(host), shell_quote(script),
    args, shell_quote(outname), shell_quote(errname), shell_quote(marker), shell_quote(outname),
    shell_quote(errname))
  local p = io.popen(cmd)
  local status = p:read("a")
  p:close()
  return T.read(outname) or "", T.read(errname) or "", tonumber(status), report and T.read(report .. "/index.html") or ""
end

do
  local script = dir .. "/spin.lua"
  T.write(script, [[
nb = require("fmnist.notebook").new("spin", arg)
if not nb then return end
nb:cell("Before", function() before_ran = true end)
nb:cell("Spins", function() io.stderr:write("spinning\n") while true do end end)
nb:cell("After", function() after_ran = true end)
nb:finish()
]])
  local rep = dir .. "/rep-int"
  local out, err, status, html = interrupt(script, "--report " .. shell_quote(rep), "spinning", rep)
  T.eq(status, 1, "Ctrl-C in a cell: the notebook ends with status 1")
  T.ok(has(err, "spin.lua: interrupted (Ctrl-C) in cell 2 'Spins'"), "and says where it was interrupted: " .. err:gsub("\n", "|"))
  T.ok(has(html, 'class="status interrupted">interrupted') and has(html, "Not run: the notebook was interrupted"),
    "the report is still written: the cell interrupted, the next not run")
  T.ok(has(out, "[1. Before:"), "the cells before it had run")
end

do
  local script = dir .. "/train.lua"
  T.write(script, ([[
local fm = require "fmnist"
nb = require("fmnist.notebook").new("train", arg)
if not nb then return end
nb:cell("Train", function()
  local ds = fm.load(%q)
  model = fm.MLP{hidden = {8}, seed = 1}
  history = nb:train(model, ds, ds:subset(1, 8), {epochs = 100000, on_epoch = function(e)
    if e == 2 then io.stderr:write("two epochs done\n") end
  end})
end)
nb:cell("Afterwards", {needs = {"model", "history"}}, function()
  print(("after training: %%d epochs in the history, %%d in the model, stopped: %%s"):format(#history,
    model.epochs, history.stopped))
end)
nb:finish()
]]):format(small))
  local out, err, status = interrupt(script, "", "two epochs done")
  T.eq(status, 0, "Ctrl-C while training: the notebook goes on and ends well")
  local n_hist, n_model = out:match("after training: (%d+) epochs in the history, (%d+) in the model")
  T.ok(n_hist and tonumber(n_hist) >= 2 and tonumber(n_model) >= tonumber(n_hist),
    "the next cell has the model and the epochs trained before Ctrl-C (" .. tostring(n_hist) .. ", "
    .. tostring(n_model) .. ")")
  T.ok(has(out, "stopped: interrupted (Ctrl-C) "), "the history says training was interrupted")
  T.ok(has(err, "Training interrupted by Ctrl-C; the notebook goes on"), "and so does stderr")
end

-- ---- -i: the notebook's values in the REPL ----
do
  local out, _, status = run("-i " .. shell_quote(nb_script) .. " --cells 1,2,6 " .. shell_quote(dir .. "/i"),
    "made\nnb.cells[3].status\nnb:run(3)\nnb.cells[3].status\n")
  T.ok(has(out, "\n7\nnot run\n"), "after fmnist-lua -i NOTEBOOK the cells' globals are there, and nb")
  T.ok(has(out, "3. This one fails") and out:find("failed\n$"), "nb:run(n) runs a cell left out")
  T.eq(status, 0, "-i: status 0 when the notebook ran")
end

-- ---- two --quick reports of the CNN notebook: the same numbers ----
if pcall(fm.load, "test") then
  local function report_once(name)
    local rep = dir .. "/same"
    os.execute("rm -rf " .. shell_quote(rep))
    local out, err, status = run("report notebooks/cnn.lua --quick -o " .. shell_quote(rep))
    T.eq(status, 0, "the --quick CNN report runs (" .. name .. ")" .. (status ~= 0 and err or ""))
    os.execute(("mv %s %s"):format(shell_quote(rep), shell_quote(dir .. "/" .. name)))
    return T.read(dir .. "/" .. name .. "/index.html") or ""
  end
  local function mask(html)
    return (html:gsub('class="([^"]*volatile[^"]*)">[^<]*<', 'class="%1">#<')
      :gsub("%d+%.?%d* ?s%f[^%w]", "#s"):gsub("%d+ img/s", "# img/s"):gsub("%d+ images/s", "# images/s"))
  end
  local a, b = report_once("first"), report_once("second")
  T.ok(#a > 100000 and has(a, "CNN on the test set: accuracy 0."), "the report has the CNN's results")
  local same = mask(a) == mask(b)
  T.ok(same, "two reports with the same seed: identical but for times and dates (figures included)")
  if not same then
    local la, lb = {}, {}
    for l in mask(a):gmatch("[^\n]*") do la[#la + 1] = l end
    for l in mask(b):gmatch("[^\n]*") do lb[#lb + 1] = l end
    for i = 1, math.max(#la, #lb) do
      if la[i] ~= lb[i] then
        print("# first difference, line " .. i .. ":\n# " .. tostring(la[i]):sub(1, 200) .. "\n# " .. tostring(lb[i]):sub(1, 200))
        break
      end
    end
  end
  T.ok(a ~= b, "(the dates and times do differ, so the masking mattered)")
else
  T.ok(true, "# SKIP the CNN reports: the Fashion-MNIST dataset is not installed")
end

T.done()
