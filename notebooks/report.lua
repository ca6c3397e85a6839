-- report.lua: the whole analysis as one report — EDA, the three models, what they look at, and
-- the comparison — in out/report/index.html (one self-contained file) and out/report/index.md.
--
--   fmnist-lua notebooks/report.lua [outdir] [--quick] [--seed N] [--epochs N] [--format FMT]
--
-- Runs notebooks/eda.lua, logreg.lua, mlp.lua, cnn.lua, explain.lua and compare.lua one after
-- the other through `fmnist-lua report` (lua/fmnist/cmd_report.lua): each notebook's figures and
-- model go to outdir/NAME, the report to outdir. The same as
--   fmnist-lua report -o out/report notebooks/eda.lua notebooks/logreg.lua ... notebooks/compare.lua
-- with the options passed on to the notebooks that take them. A failed cell is in the report and
-- the rest runs; the exit status says whether everything ran.
local notebook = require "fmnist.notebook"

if notebook.session then
  notebook.user_error("report.lua makes a report of its own: run it as  fmnist-lua notebooks/report.lua")
end
local o = notebook.options("report", arg, {}, { "report", "cells", "list" }, {
  title = "The whole analysis of Fashion-MNIST as one report",
  about = [[Runs the EDA, the three model notebooks, the explanations and the comparison, and writes
    them up in outdir/index.html and outdir/index.md.]],
})
if not o then return end

local here = (arg and arg[0] or "notebooks/report.lua"):match("^(.*)/[^/]*$") or "."
local function with(list, ...)
  local out = { here .. "/" .. list }
  for _, w in ipairs { ... } do out[#out + 1] = w end
  return out
end
local common = { "--seed", tostring(o.seed), "--format", o.format }
local training = { table.unpack(common) }
if o.quick then training[#training + 1] = "--quick" end
if o.given.epochs then
  training[#training + 1] = "--epochs"
  training[#training + 1] = tostring(o.epochs)
end
local explaining = { table.unpack(common) }
if o.quick then explaining[#explaining + 1] = "--quick" end

local args = { "-o", o.outdir }
local plan = {
  with("eda.lua", table.unpack(common)),
  with("logreg.lua", table.unpack(training)),
  with("mlp.lua", table.unpack(training)),
  with("cnn.lua", table.unpack(training)),
  with("explain.lua", table.unpack(explaining)),
  with("compare.lua", table.unpack(training)),
}
for _, words in ipairs(plan) do table.move(words, 1, #words, #args + 1, args) end
local command = {}
for i = -1, #arg do
  if arg[i] ~= nil then command[#command + 1] = arg[i] end
end
local status = require("fmnist.cmd_report")(args, command)
if status ~= 0 then
  notebook.user_error(status == 130 and "report.lua: interrupted; the report has what ran"
    or "report.lua: some cells failed; the report says which")
end
