-- fmnist.report (fm.report): a notebook run written down — DIR/index.html, one self-contained file
-- (figures embedded as base64 PNG or inline SVG, no script, no network, printable), and
-- DIR/index.md with the figures as files beside it.
--
--   report.write(session) -> html_path, md_path
--   report.html(session), report.markdown(session) -> the text of each
--   report.provenance(session) -> {{name, value}, ...}: what the numbers depend on
--   report.base64(bytes)
--
-- A session is what fmnist.notebook keeps while notebooks run for a report:
--   { dir = "out/report", notebooks = {nb, ...}, argv = {program, args...}, date = "...",
--     started = clock, finished = clock }
-- and each notebook (fmnist.notebook's Notebook) its options, parameters and cells; a cell has a
-- number, a title, a status ("ok", "failed", "skipped", "interrupted", "not run"), its seconds
-- and its items in the order they came: {kind = "output", text}, {kind = "prose", text},
-- {kind = "table", columns, rows}, {kind = "figure", path, what}, {kind = "error", message,
-- traceback}.
--
-- Everything that changes from one run to the next (dates, durations, speeds) is marked
-- class="volatile" in the HTML, so that two runs can be compared with it masked.
local fm = require "fmnist"

local M = {}

-- ---- small helpers ----

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

function M.base64(s)
  local out, n = {}, #s
  local chars = {}
  for i = 0, 63 do chars[i] = B64:sub(i + 1, i + 1) end
  for i = 1, n - 2, 3 do
    local a, b, c = s:byte(i, i + 2)
    local v = a * 65536 + b * 256 + c
    out[#out + 1] = chars[v >> 18] .. chars[(v >> 12) & 63] .. chars[(v >> 6) & 63] .. chars[v & 63]
  end
  local rest = n % 3
  if rest == 1 then
    local v = s:byte(n) * 65536
    out[#out + 1] = chars[v >> 18] .. chars[(v >> 12) & 63] .. "=="
  elseif rest == 2 then
    local a, b = s:byte(n - 1, n)
    local v = a * 65536 + b * 256
    out[#out + 1] = chars[v >> 18] .. chars[(v >> 12) & 63] .. chars[(v >> 6) & 63] .. "="
  end
  return table.concat(out)
end

local function esc(s)
  return (tostring(s):gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
    ['"'] = "&quot;" }))
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("a")
  f:close()
  return data
end

-- Writes through a temporary file renamed into place, so that a failure never leaves half a report.
local function write_file(path, data)
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then error("report: cannot write " .. path .. ": " .. tostring(err), 0) end
  local ok, werr = f:write(data)
  local closed, cerr = f:close()
  if not ok or not closed then
    os.remove(tmp)
    error("report: cannot write " .. path .. ": " .. tostring(werr or cerr), 0)
  end
  local renamed, rerr = os.rename(tmp, path)
  if not renamed then
    os.remove(tmp)
    error("report: cannot write " .. path .. ": " .. tostring(rerr), 0)
  end
end

local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- The first line a shell command prints (stderr discarded), or nil.
local function command_line_of(cmd)
  local p = io.popen(cmd .. " 2>/dev/null")
  if not p then return nil end
  local out = p:read("a")
  p:close()
  out = out and out:match("^%s*(.-)%s*$")
  if out == "" then return nil end
  return out
end

-- Output text as it looked on a terminal: carriage returns keep the last rewrite of a line,
-- colour and cursor escapes go.
local function terminal_text(s)
  s = s:gsub("\27%[[%d;?]*[%a]", "")
  local lines = {}
  for line in (s .. "\n"):gmatch("([^\n]*)\n") do
    lines[#lines + 1] = line:match("([^\r]*)\r*$") or line
  end
  if lines[#lines] == "" then lines[#lines] = nil end
  return table.concat(lines, "\n")
end
M.terminal_text = terminal_text

local function seconds_text(s)
  if not s then return "" end
  if s >= 60 then return ("%dm%02ds"):format(math.floor(s / 60), math.floor(s % 60)) end
  return ("%.1f s"):format(s)
end

-- ---- provenance ----

local SIMD = { "sse2", "ssse3", "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f",
  "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "neon", "asimd", "sve" }

local function cpu()
  local text = read_file("/proc/cpuinfo")
  if not text then return "unknown", "unknown" end
  local model = text:match("model name%s*:%s*([^\n]+)") or text:match("Hardware%s*:%s*([^\n]+)")
    or text:match("CPU part%s*:%s*([^\n]+)") or "unknown"
  local count = select(2, text:gsub("\nprocessor%s*:", "")) + (text:match("^processor%s*:") and 1 or 0)
  local flags = " " .. (text:match("\nflags%s*:%s*([^\n]+)") or text:match("Features%s*:%s*([^\n]+)")
    or "") .. " "
  local have = {}
  for _, f in ipairs(SIMD) do
    if flags:find(" " .. f .. " ", 1, true) then have[#have + 1] = f end
  end
  return ("%s, %d logical CPUs"):format(model, count), #have > 0 and table.concat(have, " ") or "none found"
end

local function os_name()
  local release = read_file("/etc/os-release")
  local pretty = release and release:match('PRETTY_NAME="([^"]+)"')
  local kernel = read_file("/proc/sys/kernel/osrelease")
  kernel = kernel and kernel:match("^%s*(.-)%s*$")
  return (pretty or "unknown") .. (kernel and (", Linux " .. kernel) or "")
end

-- Where fm.load("train") and fm.load("test") find their files, in the order fm.load looks:
-- $FMNIST_DATA, ./data, /usr/share/datasets/fashion-mnist; IDX (raw before .gz) or the CSV.
function M.dataset_files()
  local dirs = {}
  local env = os.getenv("FMNIST_DATA")
  if env and env ~= "" then dirs[#dirs + 1] = env end
  dirs[#dirs + 1] = "data"
  dirs[#dirs + 1] = "/usr/share/datasets/fashion-mnist"
  local function exists(p)
    local f = io.open(p, "rb")
    if f then f:close() end
    return f ~= nil
  end
  local function find(dir, prefix, kind)
    local sep = dir:sub(-1) == "/" and "" or "/"
    for _, spelling in ipairs { "-" .. kind .. "-idx", "-" .. kind .. ".idx" } do
      local base = dir .. sep .. prefix .. spelling .. (kind == "images" and "3" or "1") .. "-ubyte"
      if exists(base) then return base end
      if exists(base .. ".gz") then return base .. ".gz" end
    end
  end
  local files = {}
  for _, split in ipairs { { "train", "train" }, { "test", "t10k" } } do
    for _, dir in ipairs(dirs) do
      local images, labels = find(dir, split[2], "images"), find(dir, split[2], "labels")
      if images and labels then
        files[#files + 1] = images
        files[#files + 1] = labels
        break
      end
      local csv = dir .. "/fashion-mnist_" .. split[1] .. ".csv"
      if exists(csv) then
        files[#files + 1] = csv
        break
      end
    end
  end
  return files
end

-- The git commit of the checkout a notebook came from (or of the build, when the program
-- recorded it), else "unknown".
local function git_commit(dir)
  local ok, host = pcall(require, "fmnist.host")
  local built = ok and host.build and host.build().git
  local here = command_line_of("git -C " .. shell_quote(dir) .. " describe --always --dirty --tags")
  local full = command_line_of("git -C " .. shell_quote(dir) .. " rev-parse HEAD")
  if here then return here .. (full and (" (" .. full .. ")") or "") .. (built and (", built from " .. built) or "") end
  return built and (built .. " (recorded at build time)") or "unknown (not run from a git checkout)"
end

local function gnuplot_version()
  local prog = os.getenv("FMNIST_GNUPLOT")
  if not prog or prog == "" then prog = "gnuplot" end
  return command_line_of(shell_quote(prog) .. " --version") or "not found"
end

local function command_text(argv)
  local words = {}
  for i, w in ipairs(argv or {}) do
    words[i] = w:match("^[%w%./_=,:+-]+$") and w or shell_quote(w)
  end
  return table.concat(words, " ")
end
M.command_text = command_text

function M.provenance(session)
  local v = fm.versions()
  local ok, host = pcall(require, "fmnist.host")
  local build = ok and host.build and host.build() or {}
  local model, simd = cpu()
  local first = session.notebooks[1]
  local dir = first and first.script and first.script:match("^(.*)/[^/]*$") or "."
  local rows = {
    { "command", command_text(session.argv) },
    { "date", session.date, volatile = true },
    { "duration", seconds_text((session.finished or fm.clock()) - session.started), volatile = true },
    { "fmnist", v.fmnist },
    { "git commit", git_commit(dir) },
    { "Lua", v.lua },
    { "gnuplot", gnuplot_version() },
    { "OpenBLAS", v.openblas },
    { "libpng, zlib", v.libpng .. ", " .. v.zlib },
    { "compiler", build.compiler or "unknown (not run by fmnist-lua)" },
    { "CPU", model },
    { "SIMD", simd },
    { "threads", (build.threads and tostring(build.threads) or "unknown")
      .. (os.getenv("OMP_NUM_THREADS") and (" (OMP_NUM_THREADS=" .. os.getenv("OMP_NUM_THREADS") .. ")") or "") },
    { "system", os_name() },
  }
  local seeds = {}
  for _, nb in ipairs(session.notebooks) do seeds[#seeds + 1] = nb.name .. " " .. tostring(nb.o.seed) end
  rows[#rows + 1] = { "seeds", table.concat(seeds, ", ") }
  if build.sanitizer then rows[#rows + 1] = { "sanitizer", build.sanitizer } end
  return rows
end

-- The dataset files fm.load("train") and fm.load("test") read: {path, bytes, sha256}.
function M.data_rows()
  local rows = {}
  for _, path in ipairs(M.dataset_files()) do
    local f = io.open(path, "rb")
    local size = f and f:seek("end")
    if f then f:close() end
    local sum = command_line_of("sha256sum -- " .. shell_quote(path))
    rows[#rows + 1] = { path, size or "?", sum and sum:match("^(%x+)") or "unknown" }
  end
  return rows
end

-- ---- figures ----

local function figure_kind(path) return (path:match("%.(%w+)$") or ""):lower() end

-- The ids inside one gnuplot SVG are the same in every figure: prefixed, so that several can sit
-- in one page.
local function inline_svg(text, prefix)
  text = text:gsub("^%s*<%?xml.-%?>%s*", ""):gsub("<!DOCTYPE.->%s*", "")
  local ids = {}
  for id in text:gmatch("id=['\"]([^'\"]+)['\"]") do ids[id] = true end
  text = text:gsub("(id=['\"])([^'\"]+)(['\"])", function(a, id, b) return a .. prefix .. id .. b end)
  text = text:gsub("#([%w_%-%.:]+)", function(id)
    if ids[id] then return "#" .. prefix .. id end
  end)
  return text
end

-- The path of a figure as seen from the report's folder (a copy in DIR/figures when it lies
-- outside), for index.md.
local function relative_to(dir, path)
  if path:sub(1, #dir + 1) == dir .. "/" then return path:sub(#dir + 2) end
  return nil
end

-- ---- HTML ----

local CSS = [[
:root { --ink: #1b1f24; --muted: #5b6570; --line: #d8dde3; --soft: #f4f6f8; --ok: #1a7f37;
  --bad: #cf222e; --warn: #9a6700; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color: var(--ink); max-width: 1100px; margin: 2rem auto; padding: 0 1.5rem; }
h1 { font-size: 1.8rem; margin-bottom: .2rem; }
h2 { font-size: 1.35rem; border-bottom: 2px solid var(--line); padding-bottom: .2rem; margin-top: 2.5rem; }
h3 { font-size: 1.1rem; margin: 1.8rem 0 .6rem; display: flex; gap: .6rem; align-items: baseline; }
h3 .n { color: var(--muted); font-variant-numeric: tabular-nums; }
h3 .time { margin-left: auto; color: var(--muted); font-weight: normal; font-size: .9rem; }
.meta { color: var(--muted); margin-top: 0; }
.status { font-size: .8rem; padding: .05rem .45rem; border-radius: .7rem; font-weight: 600; }
.status.failed, .status.interrupted { background: #ffebe9; color: var(--bad); }
.status.skipped, .status.not-run { background: #fff8c5; color: var(--warn); }
nav ol { padding-left: 1.4rem; } nav li { margin: .1rem 0; }
nav .time { color: var(--muted); font-size: .85rem; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 4px; padding: .6rem .8rem;
  overflow-x: auto; font: 12.5px/1.35 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
  white-space: pre; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .9rem; }
caption { text-align: left; color: var(--muted); font-size: .85rem; padding-bottom: .2rem; }
th, td { border-bottom: 1px solid var(--line); padding: .2rem .7rem; text-align: left; vertical-align: top; }
th { border-bottom: 2px solid var(--ink); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.facts td:first-child { color: var(--muted); white-space: nowrap; }
table.facts td { word-break: break-word; }
figure { margin: 1rem 0 1.6rem; }
figure img, figure svg { max-width: 100%; height: auto; display: block; }
figure svg image, figure img.pixels { image-rendering: pixelated; }
figcaption { color: var(--muted); font-size: .85rem; margin-top: .3rem; }
.error { border-left: 4px solid var(--bad); background: #fff5f5; padding: .4rem .8rem; margin: .6rem 0; }
.error pre { background: transparent; border: none; padding: .3rem 0; }
.note { border-left: 4px solid var(--warn); background: #fffbe6; padding: .4rem .8rem; }
@media print {
  body { max-width: none; margin: 0; font-size: 11pt; }
  nav { break-after: page; }
  figure, table { break-inside: avoid; }
  pre { white-space: pre-wrap; word-break: break-all; }
  h2, h3 { break-after: avoid; }
  a { color: inherit; text-decoration: none; }
}
]]

local function volatile(s) return '<span class="volatile">' .. esc(s) .. "</span>" end

local function status_badge(cell)
  if cell.status == "ok" then return "" end
  return ('<span class="status %s">%s</span>'):format(cell.status:gsub(" ", "-"), esc(cell.status))
end

local function is_numeric_format(fmt) return fmt and not fmt:find("s$") end

local function html_table(item)
  local out = { "<table>" }
  if item.caption then out[#out + 1] = "<caption>" .. esc(item.caption) .. "</caption>" end
  local head = {}
  for c, col in ipairs(item.columns) do
    head[c] = ("<th%s>%s</th>"):format(is_numeric_format(col[2]) and ' class="num"' or "", esc(col[1]))
  end
  out[#out + 1] = "<thead><tr>" .. table.concat(head, "") .. "</tr></thead><tbody>"
  for _, row in ipairs(item.cells) do
    local tds = {}
    for c, col in ipairs(item.columns) do
      local classes = {}
      if is_numeric_format(col[2]) then classes[#classes + 1] = "num" end
      if col.volatile then classes[#classes + 1] = "volatile" end
      tds[c] = ("<td%s>%s</td>"):format(#classes > 0 and (' class="' .. table.concat(classes, " ") .. '"') or "",
        esc(row[c]))
    end
    out[#out + 1] = "<tr>" .. table.concat(tds, "") .. "</tr>"
  end
  out[#out + 1] = "</tbody></table>"
  return table.concat(out, "\n")
end

local function html_figure(item, id)
  local kind = figure_kind(item.path)
  local data = read_file(item.path)
  local caption = ("<figcaption>%s — <code>%s</code></figcaption>"):format(esc(item.what),
    esc(item.path:match("[^/]+$")))
  if not data then
    return ('<div class="note">The figure %s (%s) could not be read.</div>'):format(esc(item.what),
      esc(item.path))
  end
  if kind == "png" then
    return ('<figure><img src="data:image/png;base64,%s" alt="%s">%s</figure>'):format(
      M.base64(data), esc(item.what), caption)
  elseif kind == "svg" then
    return ("<figure>%s%s</figure>"):format(inline_svg(data, id .. "-"), caption)
  elseif kind == "pdf" then
    return ('<figure><p class="note">A PDF figure: <a download="%s" href="data:application/pdf;base64,%s">%s</a>'
      .. " (browsers do not show PDF inside a page; use --format png or svg to see the figures here)</p>%s</figure>")
      :format(esc(item.path:match("[^/]+$")), M.base64(data), esc(item.what), caption)
  end
  return ('<div class="note">%s: <code>%s</code></div>'):format(esc(item.what), esc(item.path))
end

local function html_cell(nb, cell)
  local id = ("%s-%d"):format(nb.name, cell.n)
  local out = { ('<section class="cell" id="%s">'):format(esc(id)),
    ('<h3><span class="n">%d</span> %s %s <span class="time">%s</span></h3>'):format(cell.n,
      esc(cell.title), status_badge(cell), cell.seconds and volatile(seconds_text(cell.seconds)) or "") }
  if cell.reason then out[#out + 1] = ('<p class="note">%s</p>'):format(esc(cell.reason)) end
  local figure_n = 0
  for _, item in ipairs(cell.items) do
    if item.kind == "output" then
      local text = terminal_text(item.text)
      if text:match("%S") then out[#out + 1] = '<pre class="output">' .. esc(text) .. "</pre>" end
    elseif item.kind == "prose" then
      out[#out + 1] = "<p>" .. esc(item.text) .. "</p>"
    elseif item.kind == "table" then
      out[#out + 1] = html_table(item)
    elseif item.kind == "figure" then
      figure_n = figure_n + 1
      out[#out + 1] = html_figure(item, ("%s-f%d"):format(id, figure_n))
    elseif item.kind == "error" then
      out[#out + 1] = ('<div class="error"><strong>%s</strong><pre>%s</pre></div>'):format(
        esc(item.message), esc(item.traceback or ""))
    end
  end
  out[#out + 1] = "</section>"
  return table.concat(out, "\n")
end

local function facts_table(rows)
  local out = { '<table class="facts"><tbody>' }
  for _, r in ipairs(rows) do
    out[#out + 1] = ("<tr><td>%s</td><td>%s</td></tr>"):format(esc(r[1]),
      r.volatile and volatile(r[2]) or esc(r[2]))
  end
  out[#out + 1] = "</tbody></table>"
  return table.concat(out, "\n")
end

local function parameter_rows(nb)
  local rows = {}
  for _, p in ipairs(nb.parameters or {}) do
    if p.value == "-" and not p.given then goto next_parameter end
    local how
    if p.note then
      how = " (" .. p.note .. "; default " .. p.default .. ")"
    elseif p.given then
      how = " (given; default " .. p.default .. ")"
    elseif p.value == p.default then
      how = " (default)"
    else
      how = " (default " .. p.default .. ", changed by another option)"
    end
    rows[#rows + 1] = { "--" .. p.name, p.value .. how }
    ::next_parameter::
  end
  return rows
end

local function counts(session)
  local cells, bad = 0, 0
  for _, nb in ipairs(session.notebooks) do
    for _, c in ipairs(nb.cells) do
      cells = cells + 1
      if c.status ~= "ok" then bad = bad + 1 end
    end
  end
  return cells, bad
end

local function title_of(session)
  if #session.notebooks == 1 then return session.notebooks[1].title end
  return session.title or "Fashion-MNIST: the whole analysis"
end

function M.html(session)
  local cells, bad = counts(session)
  local out = {
    "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    "<title>" .. esc(title_of(session)) .. "</title>", "<style>" .. CSS .. "</style>", "</head><body>",
    "<header><h1>" .. esc(title_of(session)) .. "</h1>",
    ('<p class="meta">%s · %s · fmnist %s · %d cells%s</p>'):format(volatile(session.date),
      volatile(seconds_text((session.finished or fm.clock()) - session.started)), esc(fm.version), cells,
      bad > 0 and (", " .. bad .. " not run to the end") or ""),
    "</header>",
  }
  -- contents
  out[#out + 1] = "<nav><h2>Contents</h2><ol>"
  out[#out + 1] = '<li><a href="#setup">How this report was made</a></li>'
  for _, nb in ipairs(session.notebooks) do
    out[#out + 1] = ('<li><a href="#%s">%s</a><ol>'):format(esc(nb.name), esc(nb.title))
    for _, c in ipairs(nb.cells) do
      out[#out + 1] = ('<li><a href="#%s-%d">%s</a> %s <span class="time">%s</span></li>'):format(
        esc(nb.name), c.n, esc(c.title), status_badge(c), c.seconds and volatile(seconds_text(c.seconds)) or "")
    end
    out[#out + 1] = "</ol></li>"
  end
  out[#out + 1] = "</ol></nav>"
  -- provenance
  out[#out + 1] = '<section id="setup"><h2>How this report was made</h2>'
  out[#out + 1] = facts_table(M.provenance(session))
  out[#out + 1] = html_table({ caption = "the dataset files read", columns = { { "file", "%s" },
    { "bytes", "%d" }, { "sha256", "%s" } }, cells = M.data_rows() })
  for _, nb in ipairs(session.notebooks) do
    local rows = parameter_rows(nb)
    if #rows > 0 then
      out[#out + 1] = ("<h3>Parameters of %s</h3>"):format(esc(nb.script or nb.name))
      out[#out + 1] = facts_table(rows)
    end
  end
  out[#out + 1] = "</section>"
  for _, nb in ipairs(session.notebooks) do
    out[#out + 1] = ('<section class="notebook" id="%s"><h2>%s</h2>'):format(esc(nb.name), esc(nb.title))
    if nb.about then out[#out + 1] = "<p>" .. esc(nb.about:gsub("%s+", " ")) .. "</p>" end
    for _, c in ipairs(nb.cells) do out[#out + 1] = html_cell(nb, c) end
    out[#out + 1] = "</section>"
  end
  out[#out + 1] = "</body></html>"
  return table.concat(out, "\n") .. "\n"
end

-- ---- Markdown ----

local function md_cell_text(s) return (tostring(s):gsub("|", "\\|"):gsub("\n", " ")) end

local function md_table(item)
  local head, rule, out = {}, {}, {}
  for c, col in ipairs(item.columns) do
    head[c] = md_cell_text(col[1])
    rule[c] = is_numeric_format(col[2]) and "---:" or "---"
  end
  out[1] = "| " .. table.concat(head, " | ") .. " |"
  out[2] = "|" .. table.concat(rule, "|") .. "|"
  for _, row in ipairs(item.cells) do
    local cells = {}
    for c in ipairs(item.columns) do cells[c] = md_cell_text(row[c]) end
    out[#out + 1] = "| " .. table.concat(cells, " | ") .. " |"
  end
  return table.concat(out, "\n")
end

function M.markdown(session, figure_paths)
  local cells, bad = counts(session)
  local out = { "# " .. title_of(session), "",
    ("%s · %s · fmnist %s · %d cells%s"):format(session.date,
      seconds_text((session.finished or fm.clock()) - session.started), fm.version, cells,
      bad > 0 and (", " .. bad .. " not run to the end") or ""), "",
    "## How this report was made", "", "| | |", "|---|---|" }
  for _, r in ipairs(M.provenance(session)) do
    out[#out + 1] = ("| %s | %s |"):format(md_cell_text(r[1]), md_cell_text(r[2]))
  end
  out[#out + 1] = ""
  out[#out + 1] = md_table({ columns = { { "dataset file", "%s" }, { "bytes", "%d" }, { "sha256", "%s" } },
    cells = M.data_rows() })
  out[#out + 1] = ""
  for _, nb in ipairs(session.notebooks) do
    local rows = parameter_rows(nb)
    if #rows > 0 then
      out[#out + 1] = ("Parameters of `%s`:"):format(nb.script or nb.name)
      out[#out + 1] = ""
      for _, r in ipairs(rows) do out[#out + 1] = ("- `%s` %s"):format(r[1], r[2]) end
      out[#out + 1] = ""
    end
  end
  for _, nb in ipairs(session.notebooks) do
    out[#out + 1] = "## " .. nb.title
    out[#out + 1] = ""
    if nb.about then
      out[#out + 1] = (nb.about:gsub("%s+", " "))
      out[#out + 1] = ""
    end
    for _, c in ipairs(nb.cells) do
      out[#out + 1] = ("### %d. %s%s%s"):format(c.n, c.title,
        c.status ~= "ok" and (" [" .. c.status .. "]") or "",
        c.seconds and (" (" .. seconds_text(c.seconds) .. ")") or "")
      out[#out + 1] = ""
      if c.reason then
        out[#out + 1] = "> " .. c.reason
        out[#out + 1] = ""
      end
      for _, item in ipairs(c.items) do
        if item.kind == "output" then
          local text = terminal_text(item.text)
          if text:match("%S") then
            out[#out + 1] = "```text\n" .. text .. "\n```"
            out[#out + 1] = ""
          end
        elseif item.kind == "prose" then
          out[#out + 1] = item.text
          out[#out + 1] = ""
        elseif item.kind == "table" then
          out[#out + 1] = md_table(item)
          out[#out + 1] = ""
        elseif item.kind == "figure" then
          local rel = figure_paths and figure_paths[item.path] or item.path
          out[#out + 1] = ("![%s](%s)"):format(item.what, rel)
          out[#out + 1] = ""
        elseif item.kind == "error" then
          out[#out + 1] = "**" .. item.message:gsub("\n.*", "") .. "**"
          out[#out + 1] = ""
          out[#out + 1] = "```text\n" .. (item.traceback or item.message) .. "\n```"
          out[#out + 1] = ""
        end
      end
    end
  end
  return table.concat(out, "\n")
end

-- ---- writing ----

local function make_dir(dir)
  if not os.execute("mkdir -p -- " .. shell_quote(dir)) then
    error("report: cannot create the folder " .. dir, 0)
  end
end

function M.write(session)
  local dir = (session.dir:gsub("/+$", ""))
  if dir == "" then dir = "/" end
  make_dir(dir)
  -- Figures outside the folder are copied into DIR/figures, so that index.md finds them.
  local paths, used = {}, {}
  for _, nb in ipairs(session.notebooks) do
    for _, c in ipairs(nb.cells) do
      for _, item in ipairs(c.items) do
        if item.kind == "figure" and not paths[item.path] then
          local rel = relative_to(dir, item.path)
          if not rel then
            local data = read_file(item.path)
            if data then
              make_dir(dir .. "/figures")
              local base = nb.name .. "_" .. item.path:match("[^/]+$")
              while used[base] do base = "_" .. base end
              used[base] = true
              write_file(dir .. "/figures/" .. base, data)
              rel = "figures/" .. base
            end
          end
          paths[item.path] = rel or item.path
        end
      end
    end
  end
  session.finished = session.finished or fm.clock()
  local html_path, md_path = dir .. "/index.html", dir .. "/index.md"
  write_file(html_path, M.html(session))
  write_file(md_path, M.markdown(session, paths))
  return html_path, md_path
end

return M
