# The two commands of the README. Both create .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch is installed explicitly first: an open range would let pip fetch a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0
SEED ?= 0

.PHONY: demo test lint bench bench-parity bench-robustness bench-mnist-dense bench-mnist-cnn bench-fashion-cnn bench-speed report clean bench-smoke bench-studies bench-peers-direct bench-peers-conversion bench-peers-sinabs gpu-carry gpu-unpack gpu-spiking

$(VENV)/.base:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q $(TORCH_PIN)
	touch $@

$(VENV)/.installed: $(VENV)/.base pyproject.toml
	$(PIP) install -q -e '.[plot]'
	touch $@

$(VENV)/.dev: $(VENV)/.base pyproject.toml
	$(PIP) install -q -e '.[dev,nir]'
	# NIR importers for the interop tests, without their declared dependencies: norse declares
	# torchvision, which would bring another torch. A failure here only skips those tests, with
	# pip's output (kept in $(VENV)/.importers-install-error.txt) as the reason.
	-$(PIP) install -q --no-deps nirtorch==2.6 norse==1.1.0 snntorch==1.0.0 spikingjelly==2.0.0 loguru==0.7.3 \
		> $(VENV)/.importers-install-error.txt 2>&1 && rm -f $(VENV)/.importers-install-error.txt \
		|| cat $(VENV)/.importers-install-error.txt
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/whetstone train --preset mnist-dense --seed $(SEED) --out runs/demo
	$(VENV)/bin/whetstone evaluate runs/demo

test: $(VENV)/.dev
	$(PY) -m pytest
# make test runs tests/interop too, with the Sinabs environment built first
test: interop-env

# Issue 13: our NIR files in Norse, snnTorch, SpikingJelly (all in .venv) and Sinabs, whose
# nir<=1.0.4 pin needs its own environment .venv-sinabs ($(TORCH_PIN) first, then Sinabs with
# the same pin; the oldest nir the project declares is tested there too). A failed install is
# recorded in .venv-sinabs/.interop-install-error.txt and the Sinabs tests skip with it.
.PHONY: test-interop interop-env
interop-env: $(VENV)/.dev
	$(PY) tests/interop/sinabs_env.py build --torch-pin $(TORCH_PIN)

test-interop: interop-env
	$(PY) -m pytest tests/interop tests/export

# Long runs (see BENCHMARKS.md); each writes JSON to benchmarks/results/.
bench: bench-mnist-dense bench-speed report

bench-mnist-dense: $(VENV)/.dev
	$(PY) -m benchmarks.accuracy --preset mnist-dense --seeds 0 1 2
	$(PY) -m benchmarks.accuracy --recipe mnist-dense-original --seeds 0 1 2
	$(PY) -m benchmarks.spiking runs/bench/mnist-dense-sharpened-seed0 --label mnist-dense

# The CNN presets: CPU recipes (same architecture, compressed schedule); on a GPU pass
# DEVICE=cuda and a longer recipe.
DEVICE ?= cpu
bench-mnist-cnn: $(VENV)/.dev
	$(PY) -m benchmarks.accuracy --recipe mnist-cnn-cpu --device $(DEVICE)

bench-fashion-cnn: $(VENV)/.dev
	$(PY) -m benchmarks.accuracy --recipe fashion-cnn-cpu --device $(DEVICE)

# Issue 10's GPU session (benchmarks/gpu-session.sh says how the device calls go): gpu-carry
# builds the folder it carries (.gpu-carry/, data included); afterwards, with each call's files
# copied to $(GPU_RETURN)/callK/, gpu-unpack puts the results and run folders in place and
# gpu-spiking runs the exact spiking check on the CPU for every seed's sharpened network.
GPU_RETURN ?= runs/gpu-return
GPU_RUNS ?= runs/gpu
gpu-carry: $(VENV)/.installed
	PYTHON=$(PY) bash benchmarks/gpu-carry.sh

gpu-unpack: $(VENV)/.installed
	$(PY) -m benchmarks.gpu_bundle unpack $(GPU_RETURN)/*/ --into .

gpu-spiking: $(VENV)/.dev
	PYTHON=$(PY) bash benchmarks/gpu-spiking.sh $(GPU_RUNS)

bench-speed: $(VENV)/.dev
	$(PY) -m benchmarks.speed
	$(PY) -m benchmarks.demo

# Every study in --quick mode (2 epochs on 2,000 images, seed 0; a few minutes): checks
# that they run end to end. Writes *-quick.json/png to benchmarks/results/, which the report skips.
bench-smoke: $(VENV)/.bench
	OMP_NUM_THREADS=1 $(PY) -m benchmarks.run accuracy --preset mnist-dense --quick
	OMP_NUM_THREADS=1 $(PY) -m benchmarks.run encoding --quick
	OMP_NUM_THREADS=1 $(PY) -m benchmarks.run optimizers --quick
	OMP_NUM_THREADS=1 $(PY) -m benchmarks.run optimizers --quick --optimizers sgd-clip \
		--recipe mnist-small-cnn --schedules scheduled
	OMP_NUM_THREADS=1 $(PY) -m benchmarks.run schedules --quick
	OMP_NUM_THREADS=1 $(PY) -m benchmarks.run activity --quick
	OMP_NUM_THREADS=1 $(PY) -m benchmarks.run precision --quick
	OMP_NUM_THREADS=1 $(PY) -m benchmarks.run peers-direct --quick
	OMP_NUM_THREADS=1 $(PY) -m benchmarks.run peers-conversion --quick
	OMP_NUM_THREADS=1 $(PY) -m benchmarks.run peers-sinabs --quick --torch-pin $(TORCH_PIN)

# The peers of the side-by-side studies declare torchvision (another torch): --no-deps.
$(VENV)/.bench: $(VENV)/.dev
	$(PIP) install -q -e '.[bench]'
	$(PIP) install -q --no-deps snntorch==1.0.0 spikingjelly==2.0.0
	touch $@

# Issue 4's studies on the dense presets and the small CNN (the sweeps are resumable: a rerun
# skips finished runs), then the peers.
bench-studies: $(VENV)/.bench
	$(PY) -m benchmarks.run activity --label mnist-dense
	for preset in mnist-dense fashion-dense; do \
		$(PY) -m benchmarks.run encoding --preset $$preset && \
		$(PY) -m benchmarks.run optimizers --preset $$preset && \
		$(PY) -m benchmarks.run optimizers --preset $$preset --optimizers sgd-clip --schedules simple && \
		$(PY) -m benchmarks.run schedules --preset $$preset || exit 1; \
	done
	$(PY) -m benchmarks.run optimizers --recipe mnist-small-cnn \
		--schedules scheduled --seeds 0
	$(MAKE) bench-peers-direct bench-peers-conversion bench-peers-sinabs
	$(MAKE) bench-peers-direct bench-peers-conversion bench-peers-sinabs \
		PEER_PRESET=fashion-dense

# Issue 10: the recipes chosen on the validation split (benchmarks/results/tuning-*.json), each
# beside its conventional twin, 3 seeds; the time-to-accuracy preset; snnTorch on the same
# recipes (reusing these runs); the sharpening overhead at 1 and 2 threads.
bench-parity: $(VENV)/.bench
	for ds in mnist fashion; do \
		$(PY) -m benchmarks.accuracy --recipe $$ds-dense-bn-long --seeds 0 1 2 && \
		$(PY) -m benchmarks.run peers-direct --recipe $$ds-dense-bn-long \
			--seeds 0 1 2 || exit 1; \
	done
	$(PY) -m benchmarks.accuracy --preset mnist-dense-fast --seeds 0 1 2 --no-baseline
	$(PY) -m benchmarks.speed --pairs 7 --processes 5 --threads 1 2

# Issue 11: the long fuzz run over the parsers and the data-parallel speed-up (idle machine).
bench-robustness: $(VENV)/.bench
	OMP_NUM_THREADS=1 $(PY) -m benchmarks.fuzz
	$(PY) -m benchmarks.ddp --rounds 3

# The peers, one command each (e.g. make bench-peers-direct PEER_PRESET=fashion-dense PEER_SEEDS=0).
PEER_PRESET ?= mnist-dense
PEER_SEEDS ?= 0 1 2
bench-peers-direct: $(VENV)/.bench
	$(PY) -m benchmarks.run peers-direct --preset $(PEER_PRESET) --seeds $(PEER_SEEDS)

bench-peers-conversion: $(VENV)/.bench
	$(PY) -m benchmarks.run peers-conversion --preset $(PEER_PRESET) --seeds $(PEER_SEEDS)

# Sinabs pins nir<=1.0.4 (the project's nir extra needs more): the study builds its own
# environment, .venv-sinabs ($(TORCH_PIN) first, then Sinabs with the same pin), on first use.
bench-peers-sinabs: $(VENV)/.bench
	$(PY) -m benchmarks.run peers-sinabs --preset $(PEER_PRESET) --seeds $(PEER_SEEDS) \
		--torch-pin $(TORCH_PIN)

report: $(VENV)/.dev
	$(PY) -m benchmarks.report

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) .venv-sinabs runs/demo

# The documentation site (docs/, mkdocs.yml) into site/; warnings are errors. docs-figures
# redraws the figures in docs/ (the timeline trains a small network: about a minute).
.PHONY: docs docs-figures
$(VENV)/.docs: $(VENV)/.base pyproject.toml
	$(PIP) install -q -e '.[docs,plot]'
	touch $@

docs: $(VENV)/.docs
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

docs-figures: $(VENV)/.docs
	OMP_NUM_THREADS=1 $(PY) docs/figures.py
