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
