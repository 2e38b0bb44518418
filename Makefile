# embedlab: `make demo` runs the whole job on the bundled sample, `make test` the tests.
# Both create the virtual environment in .venv on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.embedlab-installed
DATA ?= data/sample
OUT ?= results
# Test processes (pytest-xdist). Each test file runs whole in one of them, so a module's fixtures
# (fitted runs, built caches, the Dask cluster) are made once; 0 runs the suite in this process.
TEST_WORKERS ?= 2
# Where pip finds PyTorch: empty is the normal index (its Linux wheels bring the CUDA libraries);
# https://download.pytorch.org/whl/cpu gives the CPU-only wheels of the same versions.
TORCH_INDEX_URL ?=

.PHONY: env demo test bench clean-cache help

help:
	@echo "make demo   set up .venv if needed, run encode -> fit -> score the shipped models -> report on $(DATA)"
	@echo "make test   set up .venv if needed, run the test suite"
	@echo "make bench  run the benchmarks in bench/ (reads ../shared/data)"

env: $(STAMP)

# The install order matters:
# - setuptools<81 keeps pkg_resources, which face_recognition_models imports;
# - torch/torchvision are pinned (a newer or unpinned torch pulls several GB);
# - face_recognition goes in with --no-deps: it requires the source-only `dlib`,
#   and `dlib-bin` (a dependency of embedlab) is the same module prebuilt.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools<81" wheel
	$(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL)) \
		torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -e ".[test,dask]"
	$(BIN)/python -m pip install --quiet --no-deps face_recognition==1.3.0
	$(BIN)/python -c "import face_recognition, embedlab_cli.main" 2>/dev/null
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/embedlab demo $(DATA) --out $(OUT)

# lint-imports checks that the library's layers point one way (pyproject.toml, docs/architecture.md);
# tests/test_architecture.py checks it again and proves an upward import is caught.
test: $(STAMP)
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)

bench: $(STAMP)
	$(BIN)/python bench/encode.py

clean-cache:
	rm -rf $(OUT)/cache
