# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv when there is none and installs requirements.txt when it
# changed (the stamp file is a copy of the requirements it installed).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-requirements.txt
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED := 1

.PHONY: install demo test test-notebooks test-quick test-jax browser bench bench-gpu lint notebooks results docs clean

$(STAMP): requirements.txt pyproject.toml setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip "setuptools>=68"
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	@cp requirements.txt $(STAMP)

install: $(STAMP)

# The labeller's browser test needs Chromium and its driver (Debian packages).
browser:
	@if ! command -v chromedriver >/dev/null 2>&1 || ! { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; }; then \
		echo "installing chromium + chromium-driver (apt) for the labeller's browser test"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

demo: install
	$(BIN)/hybridvision demo

# Everything but executing the notebooks (make test-notebooks; CI runs both: on 2 cores about 10 and 2 minutes).
test: install browser
	$(BIN)/python -m pip install -q -r requirements-bench.txt
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --durations=25 --ignore=tests/notebooks/test_execute.py

# Every Colab notebook run top to bottom on the demo data (QUICK = True).
test-notebooks: install
	$(BIN)/python -m pip install -q -r requirements-bench.txt
	$(BIN)/python -m pytest -n auto --maxprocesses 4 tests/notebooks/test_execute.py

test-quick: install
	$(BIN)/python -m pytest -n auto --maxprocesses 4 -m "not slow"

# The layers, optimizer, augmentation, harness, backbone, transfer and app-model
# tests again on the JAX backend, plus a two-process keras.distribution
# data-parallel run (tests/jax).
test-jax: install
	$(BIN)/python -m pip install -q "jax[cpu]>=0.4.30,<0.11"
	KERAS_BACKEND=jax $(BIN)/python -m pytest -n auto --maxprocesses 4 tests/jax

# The notebooks' .py (jupytext percent format) is the source; regenerate the .ipynb.
notebooks: install
	$(BIN)/jupytext --to ipynb notebooks/*.py

bench: install
	$(BIN)/python -m pip install -q -r requirements-bench.txt
	$(BIN)/python -m benchmarks.hybrid_conv
	$(BIN)/python -m benchmarks.input_pipeline
	$(BIN)/python -m benchmarks.feature_extraction
	$(BIN)/python -m benchmarks.scale

# Layer (HybridConv2D vs Conv2D, XLA, mixed precision), app training step and
# input pipeline on the first GPU, as JSON; without a GPU: one line, exit 2.
bench-gpu: install
	$(BIN)/python -m benchmarks.gpu --out runs/bench-gpu.json

# The README's real-data results, from the samples in ../shared/data (hours on 2 CPU cores);
# docs/results/regenerate.sh NAME runs one entry, --list shows them.
results: install
	docs/results/regenerate.sh

# The documentation site (mkdocs + mkdocstrings, API pages from the docstrings) into site/;
# --strict: a broken link, anchor or docstring reference fails the build.
docs: install
	$(BIN)/mkdocs build --strict --site-dir site

lint: install
	$(BIN)/python -m pip install -q ruff
	$(BIN)/python -m ruff check .

clean:
	rm -rf runs .cache .pytest_cache
