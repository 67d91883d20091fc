# Sanitas developer commands. `make demo` and `make test` are all a new machine needs.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out/demo
export PYTHONHASHSEED := 0

.PHONY: setup lint test test-packages demo bench bench-setup soak clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "python3.11 not found"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

setup: $(BIN)/.installed

# torch first, from the CPU build, so nothing pulls a multi-GB CUDA build; then the rest
# with that torch pinned: pip 26's resolver otherwise swapped it for a CUDA 2.14.1 build
# (and 4 GB of nvidia wheels) while installing the project
$(BIN)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]" "torch==$$($(BIN)/python -c 'import torch; print(torch.__version__)')"
	touch $@

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# pytest workers (pytest-xdist); tests sharing a server-wide resource (a Redis db) carry
# an xdist_group mark, and tests/conftest.py gives one to each module whose tests share
# a model it trains once, so --dist loadgroup keeps each group on one worker
TEST_WORKERS ?= 2
# one math thread per process: two workers (and their job children) each spinning two
# OpenMP threads on two cores ran the image and tabular tests 2.5x slower (4m26 vs 1m48)
test: lint test-packages
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=15

# Debian packages the tests read: chromium (the report test draws the HTML headless) and
# dataset-fashion-mnist (70,000 real 28x28 images for the image tests)
TEST_PACKAGES := chromium dataset-fashion-mnist
test-packages:
	@command -v chromium >/dev/null && test -d /usr/share/datasets/fashion-mnist || { \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q $(TEST_PACKAGES) >/dev/null 2>&1 || \
	  { apt-get update -q && apt-get install -y -q $(TEST_PACKAGES); }; }

demo: setup
	$(BIN)/python -m service.demo --out $(OUT)

# Peers live in venvs of their own: their pins conflict with ours and with each other.
# Each venv gets the CPU torch first, so that nothing pulls a CUDA build.
PEER_VENVS := .venv-bench .venv-mbi .venv-argn .venv-sdv
bench-setup: setup
	for v in $(PEER_VENVS); do \
		test -x $$v/bin/python || $(PYTHON) -m venv $$v; \
		$$v/bin/python -c "import torch" 2>/dev/null || $$v/bin/pip install -q torch==2.13.0; \
	done
	# smartnoise-synth (AIM, MST, DP-CTGAN) alone, not Sanitas: its pins drag in an old
	# scikit-learn that has to compile
	.venv-bench/bin/pip install -q smartnoise-synth pandas scikit-learn packaging
	# private-pgm's AIM and MST as dpmm ships them (its copy of mbi, Apache-2.0); dpmm pins
	# numpy 1.26 and pandas 2.1, hence a venv of its own
	.venv-mbi/bin/pip install -q dpmm
	# MOSTLY AI's TabularARGN. Its torchvision/torchaudio wheels are CUDA builds that do
	# not load beside the CPU torch, and its tabular model needs neither
	.venv-argn/bin/pip install -q mostlyai-engine
	.venv-argn/bin/pip uninstall -y -q torchvision torchaudio
	# SDV GaussianCopula and CTGAN: non-private references (Business Source License)
	.venv-sdv/bin/pip install -q sdv
	# Fashion-MNIST (70,000 real 28x28 images) for benchmarks/image_quality.py
	test -d /usr/share/datasets/fashion-mnist || apt-get install -y -q dataset-fashion-mnist

bench: bench-setup
	$(BIN)/python benchmarks/dp_overhead.py
	$(BIN)/python benchmarks/tabular_quality.py
	$(BIN)/python benchmarks/service.py

# Long randomized trials kept out of CI (issue 7): the budget ledger under racing requests.
soak: setup
	$(BIN)/python benchmarks/budget_soak.py --trials 1000
	$(BIN)/python benchmarks/budget_soak.py --trials 1000 \
		--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

clean:
	rm -rf $(VENV) $(PEER_VENVS) out .pytest_cache .mypy_cache .ruff_cache
