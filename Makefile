# Two commands do everything on a fresh machine: `make demo` and `make test`.
# The virtual environment is created on first use. TORCH_SPEC picks the torch build:
# the default pin takes the local CPU wheel on the development machines; on a GPU machine use
# e.g. make demo TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu126"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.xtl-installed

.PHONY: demo test test-fast lint setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e '.[e5,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/xtl run parameters/demo.yaml

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check xtl tests bench

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
