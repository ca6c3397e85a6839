#!/bin/sh
# tune-parallel.sh: run a search (fm.tune) through GNU parallel, here or on other hosts over ssh.
#
#   tools/tune-parallel.sh SPEC.lua DIR [parallel options...]
#
#   tools/tune-parallel.sh search.lua out/tune -j2                  # two trials at a time here
#   tools/tune-parallel.sh search.lua /shared/tune --sshloginfile hosts   # on the hosts listed
#
# Each trial is one command, `fmnist-lua tune SPEC --trial N --dir DIR`, which writes
# DIR/trials/N.json; the trials of a rung run together and the rungs one after the other (a
# successive-halving rung starts from the results of the one before; random and grid searches
# have one rung). The end merges everything: DIR/trials.jsonl, DIR/best.fmn and the plots.
#
# On other hosts, SPEC and DIR must be at the same path on every host: a shared folder (NFS)
# is simplest, and is needed for halving, whose later rungs read the earlier rungs' results.
# For a random or grid search without a shared folder, add --return DIR/trials/{}.json (and
# --basefile SPEC) so that parallel copies each result back here before the merge.
# Trials use one core each: on a host with N cores give -jN (or --jobs N in the sshloginfile).
# FMNIST names the fmnist-lua program to use (default: fmnist-lua from PATH).
# Running the script again resumes: finished trials return at once.
set -eu
if [ $# -lt 2 ]; then
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
spec=$1
dir=$2
shift 2
fmnist=${FMNIST:-fmnist-lua}
command -v parallel >/dev/null 2>&1 || { echo "tune-parallel: GNU parallel is not installed (apt-get install parallel)" >&2; exit 1; }

rungs=$("$fmnist" tune "$spec" --plan | sed -n 's/^rung \([0-9][0-9]*\):.*/\1/p')
[ -n "$rungs" ] || { echo "tune-parallel: $spec has no rungs (see fmnist-lua tune $spec --plan)" >&2; exit 1; }
for rung in $rungs; do
  # -q quotes the command's words, so that paths with spaces or shell characters stay whole,
  # on remote hosts too; trial ids come one per line on standard input.
  "$fmnist" tune "$spec" --ids "$rung" | tr ' ' '\n' |
    parallel -q "$@" "$fmnist" tune "$spec" --trial '{}' --dir "$dir" --quiet
done
exec "$fmnist" tune "$spec" --collect "$dir"
