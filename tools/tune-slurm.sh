#!/bin/sh
# tune-slurm.sh: submit a search (fm.tune) to Slurm as job arrays, one array per rung.
#
#   tools/tune-slurm.sh SPEC.lua DIR [sbatch options...]
#
#   tools/tune-slurm.sh search.lua /shared/tune --partition=cpu --time=00:30:00
#
# Task N of a rung's array runs `fmnist-lua tune SPEC --trial N --dir DIR` on one core
# (--cpus-per-task=1: every trial trains on one thread). Each rung's array waits for the one
# before (--dependency=afterany; halving promotes from the complete results of the rung before),
# and a last job merges everything into DIR/trials.jsonl, DIR/best.fmn and the plots. Random and
# grid searches have one rung. DIR must be a folder every node sees (NFS, Lustre, ...): each
# trial writes DIR/trials/N.json through a temporary file and a rename, so nodes never write the
# same file. Job output goes to DIR/slurm/. Submitting again resumes: finished trials return at
# once; a rung with a missing trial (a task that was killed) makes the next rung's tasks fail
# with the list of what is missing, and submitting again runs it.
# FMNIST names the fmnist-lua program the nodes run (default: fmnist-lua from PATH); sbatch
# passes the environment on to the jobs.
set -eu
if [ $# -lt 2 ]; then
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
spec=$(realpath "$1")
mkdir -p "$2/slurm"
dir=$(realpath "$2")
shift 2
fmnist=${FMNIST:-fmnist-lua}
command -v sbatch >/dev/null 2>&1 || { echo "tune-slurm: sbatch is not here (is this a Slurm login node?)" >&2; exit 1; }
export FMNIST="$fmnist"

# The job scripts take SPEC and DIR as arguments: no path is ever pasted into a command line.
cat > "$dir/slurm/trial.sh" <<'EOF'
#!/bin/sh
exec "${FMNIST:-fmnist-lua}" tune "$1" --trial "$SLURM_ARRAY_TASK_ID" --dir "$2" --quiet
EOF
cat > "$dir/slurm/collect.sh" <<'EOF'
#!/bin/sh
exec "${FMNIST:-fmnist-lua}" tune "$1" --collect "$2"
EOF
chmod +x "$dir/slurm/trial.sh" "$dir/slurm/collect.sh"

after=""
for rung in $("$fmnist" tune "$spec" --plan | sed -n 's/^rung \([0-9][0-9]*\):.*/\1/p'); do
  range=$("$fmnist" tune "$spec" --range "$rung")
  job=$(sbatch --parsable --job-name="tune-rung$rung" --array="$range" --ntasks=1 --cpus-per-task=1 \
    --output="$dir/slurm/%A_%a.out" ${after:+--dependency=afterany:$after} "$@" \
    "$dir/slurm/trial.sh" "$spec" "$dir")
  job=${job%%;*}
  echo "rung $rung: trials $range, job $job"
  after=$job
done
job=$(sbatch --parsable --job-name=tune-collect --ntasks=1 --cpus-per-task=1 \
  --output="$dir/slurm/collect-%j.out" --dependency=afterany:"$after" "$@" \
  "$dir/slurm/collect.sh" "$spec" "$dir")
echo "collect: job ${job%%;*} (results in $dir/trials.jsonl, $dir/best.fmn)"
