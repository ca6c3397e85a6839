-- notebooks/resnet.lua end to end in --quick mode: it finishes, prints the classification report,
-- writes its figures as real PNG files, and the model it saves (a graph with batch norm, version
-- 2 of the model format) loads and scores what the notebook printed; compare.lua then includes it.
-- Skipped when the Fashion-MNIST files are not installed.
local T = require "testlib"
local fm = require "fmnist"

local host = os.getenv("FMNIST_HOST") or "./fmnist-lua"
local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

if not pcall(fm.load, "test") then
  T.skip("notebooks/resnet.lua", "the Fashion-MNIST dataset is not installed")
  T.done()
  return
end

local root = T.tmpdir()
local dir = root .. "/resnet" -- where compare.lua --models ROOT looks for it
local proc = io.popen(("%s notebooks/resnet.lua %s --quick 2>&1"):format(host, shell_quote(dir)))
local out = proc:read("a")
local ok = proc:close()
T.ok(ok, "resnet.lua --quick runs to the end")
if not ok then print("# " .. out:gsub("\n", "\n# ")) end
T.ok(out:find("macro avg", 1, true) and out:find("Ankle boot", 1, true), "it prints the classification report")
local accuracy = tonumber(out:match("test accuracy (%d%.%d+)"))
T.ok(accuracy and accuracy > 0.3, "it learnt something in one epoch on 2,000 images: " .. tostring(accuracy))
for _, name in ipairs { "learning_curve_loss.png", "confusion_normalized.png", "saliency.png",
                        "stem_feature_maps.png", "correct.png" } do
  local data = T.read(dir .. "/" .. name) or ""
  T.ok(data:sub(1, 8) == "\137PNG\r\n\26\n" and #data > 5000, name .. ": a PNG of " .. #data .. " bytes")
end
local m = fm.load_model(dir .. "/resnet.fmn")
T.eq(m.kind, "ResNet", "the saved model loads as a ResNet")
local test = fm.load("test"):subset(1, 500)
local r = m:evaluate(test)
T.ok(r.accuracy > 0.3, ("the loaded model scores %.3f on 500 test images"):format(r.accuracy))

-- compare.lua loads the saved ResNet beside the three (trained there, --quick, as none are saved)
proc = io.popen(("%s notebooks/compare.lua %s --models %s --quick 2>/dev/null"):format(host,
  shell_quote(root .. "/compare"), shell_quote(root)))
local cmp = proc:read("a")
ok = proc:close()
T.ok(ok, "compare.lua with a saved ResNet runs to the end")
T.ok(cmp:find("ResNet%-20 loaded from [^\n]*resnet%.fmn"), "compare: the ResNet is loaded")
local acc = tonumber(cmp:match("\nResNet%-20%s+(%d%.%d+)%s"))
T.near(acc or -1, accuracy or -2, 1e-4, "compare: the ResNet scores what its notebook printed")
T.ok(cmp:find("rank%s+pair%s+LogReg%s+MLP%s+CNN%s+ResNet%-20%s+all"), "compare: the ResNet in the pairs table")
T.done()
