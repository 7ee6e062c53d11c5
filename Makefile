# snn-blockbackend developer tasks (GNU make).
#
#   make venv       create/update .venv: CPU torch first, then the package with all extras
#   make test       the fast test suite (pytest, excludes tests marked slow): on TEST_WORKERS processes
#                   (pytest-xdist; default: one per core), then the timing-sensitive ones (marked serial) alone
#   make test-slow  only the slow tests (on TEST_WORKERS processes too)
#   make bench      the benchmark vs the native framework neurons (writes bench/)
#   make gpu-check  on a GPU machine: exactness properties on CUDA + the CUDA bench (writes bench/cuda/)
#   make gpu-wheels download the frameworks' packages to carry to a GPU machine (.gpu-wheels/)
#   make clean      remove caches and build outputs (keeps .venv); `make distclean` also removes .venv
#
# torch is pinned in constraints.txt and every pip install runs with -c constraints.txt, so no step can
# pull another torch (on Linux an unpinned resolve from PyPI would fetch the multi-GB CUDA build).
# To fetch the CPU wheel from PyTorch's index where no local wheel exists:
#   make venv TORCH_INDEX='--index-url https://download.pytorch.org/whl/cpu'

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV ?= .venv
EXTRAS ?= snntorch,spikingjelly,norse,sparseprop,bench,dev
TORCH_INDEX ?=
PYTEST_ARGS ?=
TEST_WORKERS ?= auto
# importlib mode: test files in different folders may share a basename (tests/test_bad_input.py and
# tests/sparseprop/test_bad_input.py) without __init__.py files
PYTEST := -m pytest -q --import-mode=importlib
BENCH_ARGS ?=

PY := $(VENV)/bin/python
PIP_INSTALL := $(PY) -m pip install -c constraints.txt $(if $(CI),--progress-bar off,)
TORCH_PIN := $(shell grep -E '^torch==' constraints.txt)
STAMP := $(VENV)/.stamp

.PHONY: venv test test-slow bench gpu-check gpu-wheels clean distclean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile constraints.txt
	@test -n "$(TORCH_PIN)" || { echo "constraints.txt must pin torch (torch==X.Y.Z)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) $(TORCH_INDEX) '$(TORCH_PIN)'
	$(PIP_INSTALL) -e '.[$(EXTRAS)]'
# SpikingJelly's metadata asks for torchvision/torchaudio/tensorboard, which its neurons never import; the
# [spikingjelly] extra above installs what they do import (see pyproject.toml)
	$(PIP_INSTALL) --no-deps 'spikingjelly==2.0.0'
	$(PY) -c 'import torch, snn_blockbackend; print("torch", torch.__version__, "| snn_blockbackend", snn_blockbackend.__version__)'
	touch $(STAMP)

test: venv
	$(PY) $(PYTEST) -n $(TEST_WORKERS) -m 'not slow and not serial' $(PYTEST_ARGS)
	$(PY) $(PYTEST) -m 'serial and not slow' $(PYTEST_ARGS)

test-slow: venv
	$(PY) $(PYTEST) -n $(TEST_WORKERS) -m slow $(PYTEST_ARGS)

bench: venv
	$(VENV)/bin/snn-blockbackend bench $(BENCH_ARGS)

# The GPU machine has its own CUDA PyTorch and no network: use its python3 with this checkout's source, and
# carry .gpu-wheels (the frameworks, installed there without dependencies) with the working tree.
GPU_PYTHON ?= python3
GPU_CHECK_ARGS ?=
gpu-check:
	PYTHONPATH=src $(GPU_PYTHON) -m snn_blockbackend.gpu_check $(GPU_CHECK_ARGS)

gpu-wheels: venv
	$(PY) -m pip download --no-deps -d .gpu-wheels 'snntorch==1.0.0' 'norse==1.1.0' nir nirtorch \
		'spikingjelly==2.0.0' loguru

clean:
	rm -rf build dist src/*.egg-info .pytest_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
