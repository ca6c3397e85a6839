-- fmnist.check: the checks of arguments and option tables that the Lua modules share, so that
-- every module refuses the same mistakes with errors of one shape, "fname: what was wrong", and
-- never runs a caller's metamethods while reading an options table (keys are read with next).
--
--   check.fail(fname, fmt, ...)                 raises "fname: <formatted>" (no position: the
--                                               message names the function)
--   check.options(fname, opts, known [, more])  opts or {}; an error for a non-table or any key
--                                               not in known (or more), listing the known ones
--   check.integer(fname, opts, key, default, lo, hi)   opts[key] or default, an integer in [lo, hi]
--   check.number(fname, opts, key, default, lo, hi)    the same for any number (NaN refused)
--   check.strings(fname, list, what)            a plain copy of a list of strings (read raw), or
--                                               an error naming what it should have been
local M = {}

function M.fail(fname, fmt, ...)
  error(fname .. ": " .. string.format(fmt, ...), 0)
end

function M.options(fname, opts, known, more)
  if opts == nil then return {} end
  if type(opts) ~= "table" then M.fail(fname, "options must be a table, got %s", type(opts)) end
  for k in next, opts do
    if not (known[k] or (more and more[k])) then
      local names = {}
      for name in next, known do names[#names + 1] = name end
      for name in next, more or {} do names[#names + 1] = name end
      table.sort(names)
      M.fail(fname, "unknown option '%s' (known: %s)", tostring(k), table.concat(names, ", "))
    end
  end
  return opts
end

function M.integer(fname, opts, key, default, lo, hi)
  local v = rawget(opts, key)
  if v == nil then return default end
  if math.type(v) ~= "integer" or v < lo or v > hi then
    M.fail(fname, "option '%s' must be an integer from %d to %d, got %s", key, lo, hi, tostring(v))
  end
  return v
end

function M.number(fname, opts, key, default, lo, hi)
  local v = rawget(opts, key)
  if v == nil then return default end
  if type(v) ~= "number" or v ~= v or v < lo or v > hi then
    M.fail(fname, "option '%s' must be a number from %g to %g, got %s", key, lo, hi, tostring(v))
  end
  return v
end

function M.strings(fname, list, what)
  if type(list) ~= "table" then M.fail(fname, "%s must be a list of strings, got %s", what, type(list)) end
  local out = {}
  for i = 1, rawlen(list) do
    local v = rawget(list, i)
    if type(v) ~= "string" then
      M.fail(fname, "%s: item %d must be a string, got %s", what, i, type(v))
    end
    out[i] = v
  end
  return out
end

return M
