#!/usr/bin/env bash
# Runs every reference run under runs/ through `cellm-run exec --backend $1` (cpu|gpu), writing
# runs/<run>/cellm_<backend>/, then compare_q.py on them.
# Usage: run_q.sh cpu|gpu [RUN-GLOB]   CELLM_BIN overrides the binary (default ./cellm-run.bin,
# a copy of the repo's target/release/cellm-run, so a rebuild does not change it mid-run);
# CELLM_RUNS=runs_seed2 uses another runs folder (check_q.py and compare_q.py honour it too).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
backend=${1:?cpu or gpu}
glob=${2:-*}
bin=${CELLM_BIN:-$here/cellm-run.bin}
# The fixtures' venv (numpy, onnxruntime), linked here as venv/ (see README.md).
py=${PYTHON:-venv/bin/python}
export NODEVICE_SELECT=1
status=0
runs=()
runs_dir=${CELLM_RUNS:-runs}
for d in $runs_dir/$glob/; do
  run=$(basename "$d")
  [ -f "$d/run.json" ] || continue
  runs+=("$run")
  model=$("$py" -c "import json,sys; print(json.load(open(sys.argv[1]))['model'])" "$d/run.json")
  out="$d/cellm_$backend"
  rm -rf "$out"
  start=$(date +%s.%N)
  if ! "$bin" exec "$model" --inputs "$d/inputs" --outputs "$out" --backend "$backend" > "$d/cellm_$backend.log" 2>&1; then
    echo "$run: cellm-run exec FAILED (see $d/cellm_$backend.log):"; tail -5 "$d/cellm_$backend.log"; status=1
  fi
  printf '%-20s %6.1fs  %s\n' "$run" "$(echo "$(date +%s.%N) - $start" | bc)" "$model"
done
CELLM_OUT=cellm_$backend "$py" compare_q.py "${runs[@]}" || status=1
exit $status
