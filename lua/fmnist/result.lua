-- fmnist.result: what model:evaluate and fm.metrics return — a table of scores whose report()
-- prints scikit-learn's classification_report layout with the class names.
local M = {}

local Result = {}
Result.__index = Result
M.Result = Result

-- result:report([digits]) -> string
function Result:report(digits)
  digits = digits or 2
  local names = self.classes
  local width = #"weighted avg"
  for _, name in ipairs(names) do width = math.max(width, #name) end
  local colw = math.max(digits + 2, 9) + 1
  local num = "%" .. colw .. "." .. digits .. "f"
  local int = "%" .. colw .. "d"
  local head = ("%" .. colw .. "s"):rep(4):format("precision", "recall", "f1-score", "support")
  local lines = {(" "):rep(width) .. " " .. head, ""}
  for c, name in ipairs(names) do
    -- like scikit-learn, a class neither present nor predicted gets no row
    if self.present[c] then lines[#lines + 1] = ("%" .. width .. "s "):format(name) .. num:format(self.precision[c])
        .. num:format(self.recall[c]) .. num:format(self.f1[c]) .. int:format(self.support[c]) end
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = ("%" .. width .. "s "):format("accuracy") .. (" "):rep(2 * colw)
      .. num:format(self.accuracy) .. int:format(self.n)
  for _, avg in ipairs{{"macro avg", self.macro}, {"weighted avg", self.weighted}} do
    local a = avg[2]
    lines[#lines + 1] = ("%" .. width .. "s "):format(avg[1]) .. num:format(a.precision)
        .. num:format(a.recall) .. num:format(a.f1) .. int:format(self.n)
  end
  return table.concat(lines, "\n") .. "\n"
end

function Result:__tostring()
  local loss = self.loss and (", loss %.4f"):format(self.loss) or ""
  return ("fmnist result: accuracy %.4f%s on %d images"):format(self.accuracy, loss, self.n)
end

return M
