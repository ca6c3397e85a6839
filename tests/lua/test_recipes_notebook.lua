-- notebooks/recipes.lua in --quick mode: every recipe trains one epoch on 2,000 images, the table
-- has a row for each with the accuracy its model file records, and --cells picks recipes. Skipped
-- when the Fashion-MNIST files are not installed.
local T = require "testlib"
local fm = require "fmnist"

local host = os.getenv("FMNIST_HOST") or "./fmnist-lua"
local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

if not pcall(fm.load, "test") then
  T.skip("notebooks/recipes.lua", "the Fashion-MNIST dataset is not installed")
  T.done()
  return
end

local function run(args)
  local proc = io.popen(("%s notebooks/recipes.lua %s 2>&1"):format(host, args))
  local out = proc:read("a")
  return out, proc:close()
end

local dir = T.tmpdir()
local out, ok = run(shell_quote(dir) .. " --quick")
T.ok(ok, "recipes.lua --quick runs to the end")
if not ok then print("# " .. out:gsub("\n", "\n# ")) end
local rows = {
  { "CNN %+ batch norm %+ augmentation", "cnn_bn", "CNN" },
  { "fm%.ResNet{} %(its defaults%)", "resnet", "ResNet" },
  { "fm%.MobileNet{} %(its defaults%)", "mobilenet", "MobileNet" },
  { "fm%.ResNet{}, long recipe", "resnet_long", "ResNet" },
}
for _, r in ipairs(rows) do
  local acc, epochs, params = out:match("\n" .. r[1] .. "%s+(%d%.%d+)%s+(%d+)%s+%d+%.%d%s+(%d+)\n")
  T.eq(epochs, "1", r[2] .. ": a row of the table, one epoch in a quick run")
  local m = fm.load_model(dir .. "/" .. r[2] .. ".fmn")
  T.eq({ m.kind, m.info.recipe, m.info.quick }, { r[3], r[2], "yes" }, r[2] .. ": the saved model says what it is")
  T.near(tonumber(acc) or -1, tonumber(m.info.test_accuracy) or -2, 1e-4, r[2] .. ": the accuracy it was saved with")
  T.eq(tonumber(params), m.params, r[2] .. ": its parameter count")
end
T.ok(out:find("augment%s+crop 2, flip%s+given"), "the CNN's settings show its augmentation")
T.ok(out:find("nesterov%s+true%s+the model's default") and out:find("augment%s+crop 2, flip, erase 0%.5%s+the model's default"),
  "the ResNet's settings come from its recipe")

-- --cells 1,2: the data and the CNN only
local dir2 = T.tmpdir()
out, ok = run(shell_quote(dir2) .. " --quick --cells 1,2,6")
T.ok(ok and out:find("\nCNN %+ batch norm %+ augmentation%s+%d%.%d+") and not out:find("\nfm%.MobileNet{} %(its defaults%)%s+%d")
  and out:find("4%. fm%.MobileNet{} %(its defaults%)  %[not run"),
  "--cells 1,2,6: the CNN's row alone")
T.eq(T.read(dir2 .. "/resnet.fmn"), nil, "--cells 1,2,6: no ResNet trained")
T.done()
