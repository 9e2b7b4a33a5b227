#!/usr/bin/env bash
# The CNN accuracy benchmarks on one CUDA GPU: every (recipe, seed) pair trains in its own
# process at the same time (small CNNs leave most of a large GPU idle, so the runs share it),
# each the sharpened network then its never-sharpened baseline; then one result file per recipe.
#
#   benchmarks/gpu-cnn.sh [SECONDS_PER_PROCESS]       (default 3000)
#
# Env: WHETSTONE_DATA (datasets), PYTHON (default python3), RESULTS (default
# benchmarks/results), RUNS (default runs/gpu), JOBS (default: the list below, as
# "recipe:seed ..."), DEVICE (default cuda), ARGS (more accuracy-benchmark options, e.g.
# --quick for a smoke check). A process that runs past its time is stopped; the runs it finished are
# kept (the accuracy benchmark rewrites its JSON after every run).
set -u
limit=${1:-3000}
py=${PYTHON:-python3}
results=${RESULTS:-benchmarks/results}
runs=${RUNS:-runs/gpu}
jobs=${JOBS:-"mnist-cnn-gpu:0 fashion-cnn-gpu:0 cifar10-cnn-gpu:0 mnist-cnn-gpu:1 fashion-cnn-gpu:1 mnist-cnn-gpu:2 fashion-cnn-gpu:2"}
parts=$results/parts
mkdir -p "$parts" "$runs/logs"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} PYTHONUNBUFFERED=1

for job in $jobs; do
    recipe=${job%%:*} seed=${job##*:}
    timeout "$limit" "$py" -m benchmarks.accuracy --recipe "benchmarks/recipes/$recipe.toml" \
        --seeds "$seed" --device "${DEVICE:-cuda}" ${ARGS:-} --out "$parts/accuracy-$recipe-seed$seed.json" \
        --runs-dir "$runs" >"$runs/logs/$recipe-seed$seed.log" 2>&1 &
done
wait

for recipe in $(printf '%s\n' $jobs | cut -d: -f1 | sort -u); do
    files=$(ls "$parts"/accuracy-"$recipe"-seed*.json 2>/dev/null)
    [ -n "$files" ] || { echo "$recipe: no results"; continue; }
    # shellcheck disable=SC2086
    "$py" -m benchmarks.accuracy --merge $files --out "$results/accuracy-$recipe.json" \
        && echo "$recipe: $(echo $files | wc -w) seed file(s) -> $results/accuracy-$recipe.json"
    # the sharpening timeline of the lowest seed, shown beside the accuracy table
    first=$(ls -d "$runs/$recipe"-sharpened-seed*/ 2>/dev/null | sort | head -n 1)
    [ -n "$first" ] && [ -f "$first/sharpening.png" ] && cp "$first/sharpening.png" "$results/sharpening-$recipe.png"
done
