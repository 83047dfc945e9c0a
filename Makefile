# Two commands do everything on a fresh machine: `make demo` and `make test`. `make demo`
# installs only what the demo needs; `make test` adds the development extras.
# The virtual environment is created on first use. TORCH_SPEC picks the torch build:
# the default pin takes the local CPU wheel on the development machines; on a GPU machine use
# e.g. make demo TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu126"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
DEMO ?= parameters/demo.yaml
BIN := $(VENV)/bin
comma := ,
# two install levels: what the demo needs (xtl and the e5 converter), and on top of it what the
# tests and lint need (the `dev` extra: pytest, ruff, hypothesis, Ray and submitit for the
# executor tests)
DEMO_STAMP := $(VENV)/.xtl-demo-installed
STAMP := $(VENV)/.xtl-installed

.PHONY: demo test test-fast lint setup setup-demo clean

setup: $(STAMP)

setup-demo: $(DEMO_STAMP)

# pip installs torch, so TORCH_SPEC and pip's own configuration (a local wheel, an index) pick
# the build; uv, installed into the venv beside pip, then installs xtl and everything else in
# about half pip's time on a fresh machine (BENCHMARKS.md "Set-up"). uv reads no pip.conf:
# a private index for the rest goes in UV_INDEX_URL. --compile-bytecode: where
# PYTHONDONTWRITEBYTECODE is set, nothing would ever be compiled and every process would pay.
# $(call install,EXTRAS): the venv (kept if there is one), torch, then xtl with EXTRAS
define install
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip uv
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -e '.[$(1)]'
endef

$(DEMO_STAMP): pyproject.toml
	$(call install,e5)
	touch $(DEMO_STAMP)

# on a fresh machine `make test` installs both levels in one go (one resolution, one build)
$(STAMP): pyproject.toml
	$(call install,e5$(comma)dev)
	touch $(DEMO_STAMP) $(STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/xtl run $(DEMO)

# --durations: the slowest tests are listed at the end of every run (CI's log included).
# TEST_WORKERS pytest-xdist workers (worksteal: a worker that runs dry takes queued tests from
# the other): the slow tests spend most of their time starting kernels on one core.
TEST_WORKERS ?= 2
# compileall: an editable install leaves xtl's own modules uncompiled, and where
# PYTHONDONTWRITEBYTECODE is set every process the tests start (hundreds) would compile them
# again (0.45 s each, BENCHMARKS.md "Per-cell overhead, round 3")
test: $(STAMP) lint
	$(BIN)/python -m compileall -q xtl
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal --durations=30

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check xtl tests bench

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
