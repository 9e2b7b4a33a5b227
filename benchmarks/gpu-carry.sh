#!/usr/bin/env bash
# Build .gpu-carry/, the one folder a GPU session carries besides the working tree (run it here,
# before the session; benchmarks/gpu-session.sh reads it there):
#   data/mnist/*.xz, data/fashion-mnist/*.xz   the IDX files of the local data folder (fetched
#                                              into it first if missing), xz -9: 35.6 MB
#   cifar10/cifar10-jpeg.tar.gz, to_bin.py     the CIFAR-10 JPEG mirror and its unpacker, from
#                                              ../shared/datasets/cifar10 (19.5 MB)
#   site/platformdirs/                         the one dependency of whetstone that the GPU
#                                              machine's Python lacks (pure Python, ~0.1 MB)
# and check that the working tree plus this folder stay under the device tool's 64 MiB.
#
#   benchmarks/gpu-carry.sh [FOLDER]      (default .gpu-carry; git ignores it)
#
# Env: PYTHON (default .venv/bin/python), CIFAR_DIR (default ../shared/datasets/cifar10).
set -eu
carry=${1:-.gpu-carry}
py=${PYTHON:-.venv/bin/python}
cifar=${CIFAR_DIR:-../shared/datasets/cifar10}
files="train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte"

data_dir=$("$py" -c "
from whetstone.data import load
from whetstone.data.sources import default_data_dir
for name in ('mnist', 'fashion-mnist'):
    load(name, 'test'); load(name, 'train-full')
print(default_data_dir())")
for name in mnist fashion-mnist; do
    mkdir -p "$carry/data/$name"
    for f in $files; do
        dest=$carry/data/$name/$f.xz
        [ -s "$dest" ] && continue  # already packed (delete the folder to repack)
        if [ -f "$data_dir/$name/$f" ]; then
            xz -9 -T1 -c "$data_dir/$name/$f" >"$dest.tmp"
        else
            gzip -dc "$data_dir/$name/$f.gz" | xz -9 -T1 -c >"$dest.tmp"
        fi
        mv "$dest.tmp" "$dest"
    done
done
mkdir -p "$carry/cifar10" "$carry/site"
cp "$cifar/cifar10-jpeg.tar.gz" "$cifar/to_bin.py" "$carry/cifar10/"
chmod u+w "$carry/cifar10/"*
site=$("$py" -c "import os, platformdirs; print(os.path.dirname(platformdirs.__file__))")
rm -rf "$carry/site/platformdirs"
cp -r "$site" "$carry/site/platformdirs"
find "$carry/site" -name __pycache__ -type d -prune -exec rm -rf {} +

# what the device tool sends: tracked and untracked-not-ignored files, plus this folder
tree=$( (git ls-files -z; git ls-files -z -o --exclude-standard) | xargs -0 -r du -cb 2>/dev/null \
    | awk '$2 == "total" { s += $1 } END { print s + 0 }')
extra=$(du -sb "$carry" | cut -f1)
total=$((tree + extra))
echo "working tree $((tree / 1048576)) MiB + $carry $((extra / 1048576)) MiB =" \
     "$((total / 1048576)) MiB of the 64 MiB the device tool carries"
[ "$total" -le $((64 * 1048576)) ] || { echo "too large to carry"; exit 1; }
