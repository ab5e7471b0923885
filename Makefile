# Two commands for a fresh machine with Python 3.11: `make demo` and `make test`.
# Each creates .venv (if needed) and installs the package into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HUB_STAMP := $(VENV)/.installed-hub
DEMO_DATA := data/demo
DEMO_RUN := runs/demo
DEMO_MODEL := saved_models/demo

.PHONY: demo test test-hub test-fast lint install clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## Demo data -> train -> evaluate (val + test) -> export -> batch predict with the SavedModel.
## The demo's flat shapes need no ImageNet features: it trains with the config demo-data
## writes (the scratch conv encoder), so it needs no weights file and runs offline.
demo: $(STAMP)
	$(BIN)/multimodal-tf demo-data --output $(DEMO_DATA)
	$(BIN)/multimodal-tf train --manifest $(DEMO_DATA)/manifest.csv --config $(DEMO_DATA)/config.yaml \
		--output $(DEMO_RUN) --overwrite
	$(BIN)/multimodal-tf export --run $(DEMO_RUN) --output $(DEMO_MODEL)
	$(BIN)/multimodal-tf predict --model $(DEMO_MODEL)/$$(ls $(DEMO_MODEL) | grep -E '^[0-9]+$$' | sort -n | tail -1) \
		--manifest $(DEMO_DATA)/manifest.csv --out $(DEMO_RUN)/predictions.csv

## The whole test suite (slow tests included; `make test-fast` skips them), on
## TEST_WORKERS processes (pytest-xdist): most tests are Python-bound, so two
## workers share two cores (each worker's TensorFlow gets half the cores, tests/conftest.py).
## Slow tests run first
## (tests/conftest.py) and an idle worker steals queued tests (`--dist worksteal`);
## that ordering measured no faster, but no long test can start last.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal
	$(MAKE) test-hub

## KerasHub text encoders: the [hub] extra (keras-hub, tensorflow-text), then tests/hub with
## it. `make test` runs the suite first, so a fresh .venv shows it passing without the extra.
$(HUB_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,hub]"
	touch $(HUB_STAMP)

test-hub: $(HUB_STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal tests/hub

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check multimodal_tf tests benchmarks
	$(BIN)/ruff format --check multimodal_tf tests benchmarks

clean:
	rm -rf $(VENV) runs data/demo
