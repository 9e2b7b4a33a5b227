#!/usr/bin/env bash
# The CNN accuracy benchmarks on one CUDA GPU, in one command: every (recipe, seed) pair trains
# in its own process at the same time (small CNNs leave most of a large GPU idle, so the runs
# share it). Each process is `python -m benchmarks.accuracy` for one recipe and seed: the
# never-sharpened twin, then the sharpened student (which distils from the twin and starts
# from its weights when the recipe says teacher = { run = "twin", ... }). The accuracy JSON is
# rewritten after every run, so a process stopped at its time limit keeps the runs it finished.
# Then: one result file per recipe (--merge), and one folder ($EXPORT) that holds every run's
# model.safetensors, config.json, summary.json and metrics.jsonl, the result files and the
# logs, at their paths relative to the repository (benchmarks/gpu-session.sh packs it for the
# trip back; benchmarks/gpu_bundle.py unpacks it here).
#
#   benchmarks/gpu-cnn.sh [SECONDS_PER_PROCESS]       (default 3000)
#
# What the GPU does: the whole dataset sits on the GPU and conv nets train channels_last
# (whetstone.runs.train_run and fit do both on a non-CPU device); training runs in the
# recipe's precision (precision = "bf16": each step's forward passes and loss under bfloat16
# autocast, float32 parameters); every evaluation (validation each val_every epochs, the test
# set once at the end) runs in full float32: no autocast, no TF32.
#
# Env: WHETSTONE_DATA (datasets), PYTHON (default python3), RESULTS (default
# benchmarks/results), RUNS (default runs/gpu), EXPORT (default $RUNS/export), JOBS (default:
# every GPU recipe below with seeds 0 1 2, as "recipe:seed ..."), DEVICE (default cuda), ARGS
# (more accuracy-benchmark options, e.g. "--quick" for a smoke check: results are then named
# *-quick*, which git ignores and the report skips).
set -u
limit=${1:-3000}
py=${PYTHON:-python3}
results=${RESULTS:-benchmarks/results}
runs=${RUNS:-runs/gpu}
export_dir=${EXPORT:-$runs/export}
recipes="mnist-cnn-gpu-distill fashion-cnn-gpu-distill cifar10-vgg-wide-gpu"
default_jobs=$(for seed in 0 1 2; do for r in $recipes; do printf '%s:%s ' "$r" "$seed"; done; done)
jobs=${JOBS:-$default_jobs}
suffix=
case " ${ARGS:-} " in *" --quick "*) suffix=-quick ;; esac
parts=$results/parts
mkdir -p "$parts" "$runs/logs"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} PYTHONUNBUFFERED=1

start=$(date +%s)
pids=()
# timeout runs each process in its own process group: pass a stop on to them
trap 'kill "${pids[@]}" 2>/dev/null; exit 130' INT TERM
for job in $jobs; do
    recipe=${job%%:*} seed=${job##*:}
    part="$parts/accuracy-$recipe$suffix-seed$seed.json"
    # what an earlier invocation left for this job must not pass for this one's
    rm -rf "$part" "$runs/$recipe$suffix"-{conventional,sharpened}-seed"$seed"
    # shellcheck disable=SC2086
    timeout -k 15 "$limit" "$py" -m benchmarks.accuracy --recipe "$recipe" \
        --seeds "$seed" --device "${DEVICE:-cuda}" ${ARGS:-} --out "$part" --runs-dir "$runs" \
        >"$runs/logs/$recipe$suffix-seed$seed.log" 2>&1 &
    pids+=("$!")
done
i=0
for job in $jobs; do
    wait "${pids[$i]}"
    rc=$?
    case $rc in
        0) state="finished" ;;
        124 | 137) state="STOPPED at the ${limit} s limit (finished runs kept)" ;;
        *) state="FAILED (exit $rc; see $runs/logs)" ;;
    esac
    echo "$job: $state after $(($(date +%s) - start)) s"
    i=$((i + 1))
done

for recipe in $(printf '%s\n' $jobs | cut -d: -f1 | sort -u); do
    # this invocation's parts only (not those of seeds another invocation left there)
    files=$(for job in $jobs; do
        [ "${job%%:*}" = "$recipe" ] && ls "$parts/accuracy-$recipe$suffix-seed${job##*:}.json" 2>/dev/null
    done)
    [ -n "$files" ] || { echo "$recipe: no results"; continue; }
    # shellcheck disable=SC2086
    "$py" -m benchmarks.accuracy --merge $files --out "$results/accuracy-$recipe$suffix.json" \
        && echo "$recipe: $(echo $files | wc -w) seed file(s) -> $results/accuracy-$recipe$suffix.json"
    # the sharpening timeline of the lowest seed, shown beside the accuracy table
    rm -f "$results/sharpening-$recipe$suffix.png"
    first=$(ls -d "$runs/$recipe$suffix"-sharpened-seed*/ 2>/dev/null | sort | head -n 1)
    [ -n "$first" ] && [ -f "$first/sharpening.png" ] \
        && cp "$first/sharpening.png" "$results/sharpening-$recipe$suffix.png"
done

# One folder with everything that must come back, at repository-relative paths.
rel() { printf '%s' "${1#/}"; }
rm -rf "$export_dir"
mkdir -p "$export_dir/$(rel "$runs")/logs" "$export_dir/$(rel "$parts")"
cp "$runs"/logs/*.log "$export_dir/$(rel "$runs")/logs/" 2>/dev/null
copied=0
for job in $jobs; do
    recipe=${job%%:*} seed=${job##*:}
    cp "$parts/accuracy-$recipe$suffix-seed$seed.json" "$export_dir/$(rel "$parts")/" 2>/dev/null
    for dir in "$runs/$recipe$suffix"-{conventional,sharpened}-seed"$seed"/; do
        [ -d "$dir" ] || continue
        dest="$export_dir/$(rel "$runs")/$(basename "$dir")"
        mkdir -p "$dest"
        for f in model.safetensors config.json summary.json metrics.jsonl; do
            [ -f "$dir/$f" ] && cp "$dir/$f" "$dest/"
        done
        copied=$((copied + 1))
    done
done
for recipe in $(printf '%s\n' $jobs | cut -d: -f1 | sort -u); do
    for f in "$results/accuracy-$recipe$suffix.json" "$results/sharpening-$recipe$suffix.png"; do
        [ -f "$f" ] && mkdir -p "$export_dir/$(rel "$results")" && cp "$f" "$export_dir/$(rel "$results")/"
    done
done
echo "exported $copied run folder(s) with results and logs to $export_dir" \
     "($(du -sh "$export_dir" | cut -f1)) after $(($(date +%s) - start)) s"
