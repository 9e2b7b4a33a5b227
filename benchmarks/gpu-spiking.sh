#!/usr/bin/env bash
# The exact spiking check for every seed a GPU session trained, here on the CPU: for each
# sharpened run folder brought back (benchmarks/gpu-session.sh, then
# `python -m benchmarks.gpu_bundle unpack ...`; `make gpu-unpack` does that), benchmarks/spiking.py's
# equality section: the converted network run by the numpy runtime against the torch model in
# float32 and in float64, predicted class for every test image, into
# benchmarks/results/spiking-RECIPE-seedN.json. A run already checked (same model sha256, same
# number of test images) is skipped.
#
#   benchmarks/gpu-spiking.sh [RUNS]        (default runs/gpu)
#
# Env: PYTHON (default .venv/bin/python), CIFAR_DIR (the CIFAR-10 JPEG mirror and its
# to_bin.py, unpacked into the data folder when a CIFAR-10 run needs it; default
# ../shared/datasets/cifar10), RECIPES (only these recipe labels; default every
# RECIPE-sharpened-seedN folder in RUNS), SECTIONS ("equality", the default, or "all": also
# speed, stats and weight precision, as benchmarks/spiking.py does), TEST_LIMIT (only the first
# N test images: a smoke check, its results named *-quick*, which git ignores and the report
# skips). A CNN takes several minutes on 2 cores (float64 im2col over 10,000 images).
set -u
runs=${1:-runs/gpu}
py=${PYTHON:-.venv/bin/python}
skip="--skip speed stats quant"
[ "${SECTIONS:-equality}" = all ] && skip=
limit=()
[ -n "${TEST_LIMIT:-}" ] && limit=(--test-limit "$TEST_LIMIT")
# CIFAR-10 runs need the dataset here too: unpack the JPEG mirror into the data folder once
if grep -qs '"dataset": "cifar10"' "$runs"/*-sharpened-seed*/config.json \
        && ! WHETSTONE_OFFLINE=1 "$py" -c "from whetstone.data import load; load('cifar10', 'test')" \
        2>/dev/null; then
    data=$("$py" -c "from whetstone.data.sources import default_data_dir; print(default_data_dir())")
    echo "CIFAR-10 is not in $data: unpacking the JPEG mirror from ${CIFAR_DIR:-../shared/datasets/cifar10}"
    "$py" "${CIFAR_DIR:-../shared/datasets/cifar10}/to_bin.py" "$data/cifar10" || exit 1
fi
checked=0 failed=0 labels=()
for dir in "$runs"/*-sharpened-seed*/; do
    [ -d "$dir" ] || continue
    name=$(basename "$dir")
    recipe=${name%-sharpened-seed*} seed=${name##*-seed}
    if [ -n "${RECIPES:-}" ] && ! printf '%s\n' $RECIPES | grep -qx -- "$recipe"; then
        continue
    fi
    if [ ! -f "$dir/model.safetensors" ]; then
        echo "$name: no model.safetensors (not brought back yet); skipped"
        continue
    fi
    label=$recipe-seed$seed
    case $label in *-quick*) ;; *) [ -n "${TEST_LIMIT:-}" ] && label=$recipe-quick-seed$seed ;; esac
    labels+=("$label")
    if "$py" - "$dir" "$label" "${TEST_LIMIT:-10000}" <<'EOF'; then
import hashlib, json, sys
from pathlib import Path
from benchmarks.common import RESULTS
run, label, samples = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
out = RESULTS / f"spiking-{label}.json"
sha = hashlib.sha256((run / "model.safetensors").read_bytes()).hexdigest()
old = json.loads(out.read_text()) if out.exists() else {}
done = old.get("model_sha256") == sha and old.get("equality", {}).get("samples") == samples
sys.exit(0 if done else 1)
EOF
        echo "$label: already checked (same model); skipped"
        continue
    fi
    echo "$label: exact spiking check of $dir"
    # shellcheck disable=SC2086
    if "$py" -m benchmarks.spiking "$dir" --label "$label" $skip "${limit[@]}"; then
        checked=$((checked + 1))
    else
        failed=$((failed + 1))
    fi
done
[ ${#labels[@]} -gt 0 ] || { echo "no sharpened run folders with a model in $runs"; exit 1; }
"$py" - "${labels[@]}" <<'EOF'
import json, sys
from benchmarks.common import RESULTS
print("run | test images | differ from torch float32 | from float64 | spiking accuracy")
for label in sys.argv[1:]:
    path = RESULTS / f"spiking-{label}.json"
    if not path.exists():
        print(f"{label} | no result")
        continue
    eq = json.loads(path.read_text())["equality"]
    print(f"{label} | {eq['samples']} | {eq['differing']} | {eq['differing_float64']} | "
          f"{100 * eq['accuracy_spiking']:.2f} %")
EOF
echo "checked $checked, failed $failed"
[ "$failed" -eq 0 ]
