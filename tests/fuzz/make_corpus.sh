#!/bin/sh
# Makes the seed corpus of every fuzz target in tests/fuzz/corpus/ (run from the top of the tree
# after `make all` and `make fuzz`): the file formats from the first images of the real test set
# through the project's own writers (make_corpus.lua), the Lua targets' inputs from the driver's
# "seeds" mode, a few inputs per callable. Files already there other than seeds (regression inputs
# added by hand) are kept.
#   usage: tests/fuzz/make_corpus.sh [HOST [KEYS]]
set -eu
HOST=${1:-./fmnist-lua}
KEYS=${2:-build-fuzz/fuzz_keys.txt}
C=tests/fuzz/corpus
for t in idx idx_gz csv npy png model lua lua_plot; do mkdir -p "$C/$t"; done
"$HOST" tests/fuzz/make_corpus.lua "$C"
# a gzip file as gzip writes it, for fuzz_idx_gz's "as is" mode (first byte 0)
{ printf '\000'; gzip -9 -n -c "$C/idx/images-2"; } > "$C/idx_gz/as-is-images"
{ printf '\000'; gzip -9 -n -c "$C/idx/labels-3"; } > "$C/idx_gz/as-is-labels"
"$HOST" tests/fuzz/lua_driver.lua seeds "$KEYS" "$C/lua"
"$HOST" tests/fuzz/lua_driver.lua seeds "$KEYS" "$C/lua_plot" plot
du -sh "$C"
