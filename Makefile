# Two commands on a fresh machine: `make demo` (the main job, offline) and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# The constraints file keeps torch on the CPU build that is available offline (2.13.0); without it
# pip would resolve a multi-GB CUDA build.
PIP_INSTALL := $(BIN)/pip install --quiet -c constraints.txt

.PHONY: venv demo test test-all lint format bench clean fast-malloc browser

venv: $(STAMP)

# Optional: tcmalloc makes CPU training ~1.5x faster (see src/medgan3d/runtime.py). Installed only where we are
# root with apt-get (containers, CI); elsewhere: `sudo apt-get install libtcmalloc-minimal4`. Never fails the build.
fast-malloc:
	@ls /usr/lib/*/libtcmalloc_minimal.so.4 >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (timeout 300 apt-get install -y -qq libtcmalloc-minimal4 >/dev/null 2>&1 \
	      || (timeout 300 apt-get update -qq >/dev/null 2>&1 && timeout 300 apt-get install -y -qq libtcmalloc-minimal4 >/dev/null 2>&1)); } \
	  || echo "note: libtcmalloc-minimal4 not installed; training uses glibc malloc (slower)"

# Optional: Debian's Chromium for the viewer's browser test (tests/test_viewer.py, driven by Playwright for Python;
# skipped with its reason where there is no Chromium). Installed only where we are root with apt-get (containers,
# CI; .ci/run calls it); elsewhere: `sudo apt-get install chromium`. Never fails the build.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq chromium >/dev/null 2>&1 \
	      || (timeout 300 apt-get update -qq >/dev/null 2>&1 \
	          && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq chromium >/dev/null 2>&1)); } \
	  || echo "note: chromium not installed; the viewer's browser test will be skipped"

$(STAMP): pyproject.toml constraints.txt | fast-malloc
	$(PY) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip
	$(PIP_INSTALL) -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m medgan3d demo --out demo-out

# One torch thread per test worker and one worker per core: OpenMP threads of concurrent processes spinning
# against each other made single-process runs of the suite 3-4x slower on a shared 2-core machine.
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks experiments
	$(BIN)/ruff format --check src tests benchmarks experiments
	$(BIN)/mypy
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m "not slow" -q -n auto --dist loadgroup

test-all: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n auto --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks experiments
	$(BIN)/ruff format --check src tests benchmarks experiments
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks experiments
	$(BIN)/ruff check --fix src tests benchmarks experiments

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_variants.py
	$(BIN)/python benchmarks/bench_train.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache .mypy_cache
