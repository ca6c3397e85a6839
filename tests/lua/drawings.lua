-- drawings.lua: pictures of garments drawn from simple shapes, written as real PNG files, for the
-- tests of fm.image and `fmnist-lua predict`. Each has the silhouette of its class as the
-- dataset's mean image shows it (fm.load("train"):mean_image(c)), at a size and on a background
-- that the dataset never has:
--   trouser  1  RGB 240 x 320, navy trousers (waistband, two legs parted from under a third of the
--               way down) on a light beige background, which must be detected and inverted
--   bag      8  RGBA 260 x 220, a brown bag (body and handle arc) on a transparent background
--               whose colour samples are black, which must not be taken for the background
--   sneaker  7  grey 300 x 200 (wider than tall), a low shoe facing left, dark sole and grey upper
--               on white
--
--   local D = require "drawings"
--   D.write_all(dir) -> {{name =, class =, path =}, ...}
local W = require "pngwrite"

local D = {}

-- Whether (x, y) is inside the polygon {{x1, y1}, ...} (even-odd rule).
local function inside(poly, x, y)
  local yes = false
  local j = #poly
  for i = 1, #poly do
    local xi, yi, xj, yj = poly[i][1], poly[i][2], poly[j][1], poly[j][2]
    if (yi > y) ~= (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi then yes = not yes end
    j = i
  end
  return yes
end

D.pictures = {
  {
    name = "trouser", class = 1, color = "rgb", width = 240, height = 320,
    pixel = (function()
      local legs = { { 0.30, 0.08 }, { 0.70, 0.08 }, { 0.74, 0.92 }, { 0.545, 0.92 },
        { 0.50, 0.30 }, { 0.455, 0.92 }, { 0.26, 0.92 } }
      return function(u, v)
        if v >= 0.08 and v < 0.13 and u >= 0.30 and u <= 0.70 then return 0.10, 0.12, 0.30 end
        if inside(legs, u, v) then return 0.15, 0.20, 0.45 end
        return 0.93, 0.92, 0.88
      end
    end)(),
  },
  {
    name = "bag", class = 8, color = "rgba", width = 260, height = 220,
    pixel = function(u, v)
      local x, y = u * 260, v * 220
      local body = u >= 0.08 and u <= 0.92 and v >= 0.40 and v <= 0.93
      local r = math.sqrt((x - 130) ^ 2 + (y - 90) ^ 2)
      local handle = y <= 90 and r >= 48 and r <= 62
      if body then return 0.35, 0.20, 0.10, 1 end
      if handle then return 0.30, 0.18, 0.08, 1 end
      return 0, 0, 0, 0
    end,
  },
  {
    name = "sneaker", class = 7, color = "grey", width = 300, height = 200,
    pixel = (function()
      local upper = { { 0.05, 0.70 }, { 0.08, 0.58 }, { 0.20, 0.52 }, { 0.38, 0.45 },
        { 0.55, 0.36 }, { 0.70, 0.33 }, { 0.82, 0.37 }, { 0.93, 0.34 }, { 0.96, 0.45 },
        { 0.96, 0.70 } }
      return function(u, v)
        if v >= 0.70 and v <= 0.79 and u >= 0.04 and u <= 0.97 then return 0.12 end
        if inside(upper, u, v) then return 0.40 end
        return 1
      end
    end)(),
  },
}

-- Writes every picture into dir; the pixel functions get the pixel centre in [0,1] x [0,1].
function D.write_all(dir)
  local out = {}
  for _, p in ipairs(D.pictures) do
    local path = dir .. "/" .. p.name .. ".png"
    W.write(path, { width = p.width, height = p.height, color = p.color,
      pixel = function(x, y) return p.pixel((x + 0.5) / p.width, (y + 0.5) / p.height) end })
    out[#out + 1] = { name = p.name, class = p.class, path = path }
  end
  return out
end

return D
