# Two commands from a fresh clone:
#   make demo   sets up .venv, samples from the shipped model, trains briefly on sine waves
#   make test   sets up .venv the same way, lints and checks the format (ruff), and runs the test suite (what CI runs)
# Both reuse .venv once it is set up; `make clean` removes it.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test test-slow setup clean

setup: $(VENV)/.ready

# Rebuilt when the project's requirements change; otherwise a second run does nothing.
$(VENV)/.ready: pyproject.toml scripts/setup-venv
	VENV=$(VENV) PYTHON=$(PYTHON) sh scripts/setup-venv
	touch $@

demo: setup
	$(BIN)/seqgen sample checkpoints/sine.safetensors --length 200 --plot --seed 1 > /dev/null
	$(BIN)/seqgen sample checkpoints/tinyshakespeare.safetensors --prime "ROMEO:" --length 300 --temperature 0.8 --seed 1
	$(BIN)/seqgen train --out checkpoints/demo-sine.safetensors --force
	$(BIN)/seqgen sample checkpoints/demo-sine.safetensors --length 300 --plot --seed 1 > /dev/null
	$(BIN)/seqgen eval checkpoints/demo-sine.safetensors --seed 1

# The linter and the formatter's check (ruff, configured in pyproject.toml), the suite on two workers (pytest-xdist), then the tests of exact numerics once more as an
# AVX2-only CPU runs them (OpenBLAS's Haswell kernels, oneDNN and ATen capped at AVX2), so that a
# machine with AVX-512 cannot hide what fails on one without it.
AVX2 := OPENBLAS_CORETYPE=Haswell ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2
NUMERICS := tests/test_generate.py tests/test_beam.py tests/test_precision.py tests/test_sampling.py

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -n 2
	$(AVX2) $(BIN)/python -m pytest -q -n 2 $(NUMERICS)

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV)
