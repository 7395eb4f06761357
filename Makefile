# The two commands a newcomer needs: `make demo` and `make test`.
PY := .build/venv/bin/python
SETUP := bash scripts/setup_host.sh

.PHONY: setup demo test test-fast clean

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
.PHONY: world
world: setup
	$(PY) -m concept_world.build
