-- pngwrite.lua: writes PNG files of every kind the readers must accept, for the tests: grey,
-- grey+alpha, RGB, RGBA and palette images, 8 or 16 bits, with a transparency chunk, interlaced
-- or not. The image data is stored uncompressed (deflate's stored blocks), which every decoder
-- reads; checksums (CRC-32, Adler-32) are computed here.
--
--   local W = require "pngwrite"
--   W.write(path, {width =, height =, color = "grey" | "greya" | "rgb" | "rgba" | "palette",
--                  depth = 8 | 16, interlace = false, trns = ..., palette = {{r, g, b}, ...},
--                  pixel = function(x, y) return v1, v2, ... end})
--   pixel(x, y) (0-based) gives the samples of one pixel as numbers in [0,1] (palette: the 0-based
--   index). trns: for grey, the grey sample value (0..2^depth - 1) that is transparent; for rgb,
--   {r, g, b}; for palette, a list of alpha bytes for the first entries.
--   W.chunk(kind, data) -> the bytes of one chunk; W.header(width, height, depth, colortype) ->
--   signature and IHDR, for files that claim a size they do not have.
local W = {}

local crc_table = {}
for n = 0, 255 do
  local c = n
  for _ = 1, 8 do
    if c & 1 == 1 then c = 0xEDB88320 ~ (c >> 1) else c = c >> 1 end
  end
  crc_table[n] = c
end

local function crc32(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do c = crc_table[(c ~ s:byte(i)) & 0xFF] ~ (c >> 8) end
  return c ~ 0xFFFFFFFF
end

local function adler32(s)
  local a, b = 1, 0
  for i = 1, #s do
    a = (a + s:byte(i)) % 65521
    b = (b + a) % 65521
  end
  return (b << 16) | a
end

function W.chunk(kind, data)
  return string.pack(">I4", #data) .. kind .. data .. string.pack(">I4", crc32(kind .. data))
end

-- zlib stream of stored blocks (at most 65535 bytes each).
local function zlib_stored(data)
  local parts = { "\x78\x01" }
  local pos = 1
  repeat
    local block = data:sub(pos, pos + 65534)
    pos = pos + #block
    local final = pos > #data and 1 or 0
    parts[#parts + 1] = string.pack("<BI2I2", final, #block, (~#block) & 0xFFFF) .. block
  until pos > #data
  parts[#parts + 1] = string.pack(">I4", adler32(data))
  return table.concat(parts)
end

local COLOR_TYPES = { grey = 0, rgb = 2, palette = 3, greya = 4, rgba = 6 }
local CHANNELS = { grey = 1, rgb = 3, palette = 1, greya = 2, rgba = 4 }

function W.header(width, height, depth, colortype, interlace)
  return "\137PNG\r\n\26\n"
    .. W.chunk("IHDR", string.pack(">I4I4BBBBB", width, height, depth, colortype, 0, 0,
      interlace and 1 or 0))
end

-- The bytes of one pixel's samples.
local function samples(o, x, y)
  local v = table.pack(o.pixel(x, y))
  local out = {}
  for k = 1, CHANNELS[o.color] do
    local s = v[k] or 0
    if o.color == "palette" then
      out[k] = string.char(s)
    else
      local max = (1 << o.depth) - 1
      local q = math.floor(math.max(0, math.min(1, s)) * max + 0.5)
      out[k] = o.depth == 16 and string.pack(">I2", q) or string.char(q)
    end
  end
  return table.concat(out)
end

-- Scanlines (filter type 0) of the pixels (x0 + k * dx, y0 + j * dy): the whole image, or one
-- Adam7 pass.
local function scanlines(o, x0, y0, dx, dy, out)
  for y = y0, o.height - 1, dy do
    local row = { "\0" }
    for x = x0, o.width - 1, dx do row[#row + 1] = samples(o, x, y) end
    if #row > 1 then out[#out + 1] = table.concat(row) end
  end
end

local ADAM7 = { { 0, 0, 8, 8 }, { 4, 0, 8, 8 }, { 0, 4, 4, 8 }, { 2, 0, 4, 4 }, { 0, 2, 2, 4 },
  { 1, 0, 2, 2 }, { 0, 1, 1, 2 } }

function W.write(path, o)
  o.depth = o.depth or 8
  local parts = { W.header(o.width, o.height, o.depth, COLOR_TYPES[o.color], o.interlace) }
  if o.color == "palette" then
    local p = {}
    for _, rgb in ipairs(o.palette) do
      p[#p + 1] = string.char(math.floor(rgb[1] * 255 + 0.5), math.floor(rgb[2] * 255 + 0.5),
        math.floor(rgb[3] * 255 + 0.5))
    end
    parts[#parts + 1] = W.chunk("PLTE", table.concat(p))
  end
  if o.trns then
    local t
    if o.color == "grey" then
      t = string.pack(">I2", o.trns)
    elseif o.color == "rgb" then
      t = string.pack(">I2I2I2", o.trns[1], o.trns[2], o.trns[3])
    else
      t = string.char(table.unpack(o.trns))
    end
    parts[#parts + 1] = W.chunk("tRNS", t)
  end
  local lines = {}
  if o.interlace then
    for _, p in ipairs(ADAM7) do scanlines(o, p[1], p[2], p[3], p[4], lines) end
  else
    scanlines(o, 0, 0, 1, 1, lines)
  end
  parts[#parts + 1] = W.chunk("IDAT", zlib_stored(table.concat(lines)))
  parts[#parts + 1] = W.chunk("IEND", "")
  local f = assert(io.open(path, "wb"))
  f:write(table.concat(parts))
  f:close()
  return path
end

return W
