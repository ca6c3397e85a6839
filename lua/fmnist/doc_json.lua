-- Help text of JSON (lua/fmnist/json.lua): see lua/fmnist/help.lua.
local doc = require("fmnist.help").section("Files, JSON and processes", 85, [[
What result files and searches are made of: strict JSON that other programs (jq, pandas, a
spreadsheet) read and this project reads back, files written whole or not at all, and worker
processes.]])

doc {
  name = "fm.json",
  sig = "fm.json",
  text = [[
A strict JSON encoder and decoder (RFC 8259): encode, decode and null. A value survives the round
trip: decode(encode(v)) equals v, integers stay integers and floats floats (1.0 is written 1.0),
object keys come out sorted, so the same table always gives the same text.]],
  example = [[
local text = fm.json.encode({lr = 0.001, hidden = {256, 128}})
print(text)   --> {"hidden":[256,128],"lr":0.001}
print(fm.json.decode(text).hidden[2])   --> 128
]],
}

doc {
  name = "fm.json.encode",
  sig = "fm.json.encode(value [, opts]) -> string",
  text = [[
One line of JSON. nil and fm.json.null are null; strings must be valid UTF-8 and come out with
quotes, backslashes and control characters escaped; integers as integers, floats with the fewest
digits that read back as the same double and always with a '.' or an exponent. A table whose keys
are exactly 1..n is an array, one whose keys are all strings an object (keys sorted), {} the
empty array. Anything else — mixed or sparse keys, functions, userdata, cycles, nesting deeper
than 200 — is an error naming the place ($.params.lr). Tables are read raw: metatables play no
part. NaN and the infinities are an error unless nonfinite says otherwise.]],
  options = {
    { "nonfinite", "\"error\" (default), \"null\", or \"literal\" (NaN, Infinity, as Python writes)" },
  },
  example = [[
print(fm.json.encode({name = "a\"b", ok = true, none = fm.json.null}))   --> {"name":"a\"b","none":null,"ok":true}
print(fm.json.encode(1.0), fm.json.encode(3), fm.json.encode({}))   --> 1.0 3 []
print(pcall(fm.json.encode, 0 / 0))   --> false json.encode: $: NaN is not a JSON number (nonfinite = "null" or "literal" writes it)
print(fm.json.encode(1 / 0, {nonfinite = "literal"}))   --> Infinity
]],
  see = { "fm.json.decode" },
}

doc {
  name = "fm.json.decode",
  sig = "fm.json.decode(text [, opts]) -> value",
  text = [[
The value of a JSON text: objects and arrays become plain tables, null becomes fm.json.null (so
that arrays keep their positions), numbers with a fraction or an exponent floats and the others
integers. The whole text must be one value with only white space around it. Refused, with the line
and column: comments, trailing commas, single quotes, leading zeros or '+', raw control characters
in strings, invalid UTF-8, lone surrogates, duplicate keys, nesting deeper than 200.]],
  options = {
    { "nonfinite", "true: also read NaN, Infinity and -Infinity (what encode's \"literal\" writes)" },
  },
  example = [[
local v = fm.json.decode("[1, 2.5, null]")
print(math.type(v[1]), v[2], v[3] == fm.json.null)   --> integer 2.5 true
print(pcall(fm.json.decode, "[1,]"))   --> false json.decode: a trailing comma at line 1 column 4
]],
  see = { "fm.json.encode" },
}

doc {
  name = "fm.json.null",
  sig = "fm.json.null",
  text = [[The JSON null: one unique value that cannot be changed, which decode gives for null and encode writes as null.]],
  example = [[
print(fm.json.encode({1, fm.json.null, 3}), tostring(fm.json.null))   --> [1,null,3] json.null
]],
}
