-- fmnist.result: what model:evaluate and fm.metrics return — a table of scores whose report()
-- prints scikit-learn's classification_report layout with the class names.
--
-- A result is a plain table that its owner may change; report() and tostring() check each field
-- they use and name the one that is wrong instead of failing somewhere inside string.format.
local M = {}

local Result = {}
Result.__index = Result
M.Result = Result

local function describe(v)
  if type(v) == "string" then return ("%q"):format(#v > 40 and v:sub(1, 40) .. "..." or v) end
  return type(v) == "number" and tostring(v) or type(v)
end

-- self[key] (or self[key][index]) checked with test; raises "fname: result.key[index] is ...".
local function field(self, fname, key, index, test, expected)
  local v = self[key]
  local name = "result." .. key
  if index ~= nil then
    if type(v) ~= "table" then
      error(("%s: %s is %s (a table expected)"):format(fname, name, describe(v)), 3)
    end
    name = name .. (type(index) == "number" and ("[%d]"):format(index) or "." .. index)
    v = v[index]
  end
  if not test(v) then error(("%s: %s is %s (%s expected)"):format(fname, name, describe(v), expected), 3) end
  return v
end

local function is_number(v) return type(v) == "number" end
local function is_count(v) return math.type(v) == "integer" and v >= 0 or
  (type(v) == "number" and v >= 0 and v == math.floor(v) and v < 2^53) end
local function is_string(v) return type(v) == "string" end
local function is_any() return true end
local function is_table(v) return type(v) == "table" end

local function number(self, fname, key, index) return field(self, fname, key, index, is_number, "a number") end
local function count(self, fname, key, index)
  return math.tointeger(field(self, fname, key, index, is_count, "a non-negative integer"))
end

-- Right-aligned in width columns, however long the text (string.format's widths stop at 99).
local function right(text, width) return (" "):rep(width - #text) .. text end

-- result:report([digits]) -> string; digits from 0 to 15 (default 2)
function Result:report(digits)
  if type(self) ~= "table" then
    error(("report: a result table expected, got %s (call it as result:report())"):format(describe(self)), 2)
  end
  if digits == nil then digits = 2 end
  local d = type(digits) == "number" and math.tointeger(digits)
  if not d or d < 0 or d > 15 then
    error(("report: digits must be an integer from 0 to 15, got %s"):format(describe(digits)), 2)
  end
  digits = d
  local names = field(self, "report", "classes", nil, is_table, "a table of class names")
  local nclasses = rawlen(names)
  local width = #"weighted avg"
  for c = 1, nclasses do
    width = math.max(width, #field(self, "report", "classes", c, is_string, "a class name"))
  end
  local colw = math.max(digits + 2, 9) + 1
  local function num(v) return right(("%." .. digits .. "f"):format(v), colw) end
  local function int(v) return right(("%d"):format(v), colw) end
  local head = right("precision", colw) .. right("recall", colw) .. right("f1-score", colw) .. right("support", colw)
  local lines = {(" "):rep(width) .. " " .. head, ""}
  for c = 1, nclasses do
    -- like scikit-learn, a class neither present nor predicted gets no row
    if field(self, "report", "present", c, is_any) then
      lines[#lines + 1] = right(names[c], width) .. " " .. num(number(self, "report", "precision", c))
          .. num(number(self, "report", "recall", c)) .. num(number(self, "report", "f1", c))
          .. int(count(self, "report", "support", c))
    end
  end
  local n = count(self, "report", "n")
  lines[#lines + 1] = ""
  lines[#lines + 1] = right("accuracy", width) .. " " .. (" "):rep(2 * colw)
      .. num(number(self, "report", "accuracy")) .. int(n)
  for _, avg in ipairs{{"macro avg", "macro"}, {"weighted avg", "weighted"}} do
    local key = avg[2]
    lines[#lines + 1] = right(avg[1], width) .. " " .. num(number(self, "report", key, "precision"))
        .. num(number(self, "report", key, "recall")) .. num(number(self, "report", key, "f1")) .. int(n)
  end
  return table.concat(lines, "\n") .. "\n"
end

function Result:__tostring()
  local accuracy = number(self, "tostring", "accuracy")
  local n = count(self, "tostring", "n")
  local loss = ""
  if self.loss ~= nil then loss = (", loss %.4f"):format(number(self, "tostring", "loss")) end
  return ("fmnist result: accuracy %.4f%s on %d images"):format(accuracy, loss, n)
end

return M
