# One command sets everything up and runs; one sets everything up and tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= $(abspath ../shared)
export MESOLIVE_MODEL_DIR ?= $(SHARED)/models

.PHONY: run test setup system-deps lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch==2.13.0 (CPU) is pinned: an unpinned torch pulls several GB of CUDA wheels.
setup: $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,train,gui]"

# The main job: score the authors' sample faces and the DFDC pairs.
run: setup
	$(BIN)/mesolive evaluate $(SHARED)/samples/faces --model meso4-df
	$(BIN)/mesolive evaluate $(SHARED)/faces/dfdc --model meso4-df --plot artifacts/dfdc_meso4-df.png

test: setup
	$(BIN)/ruff check mesolive tests bench
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/classifier.py

clean:
	rm -rf $(VENV) artifacts .pytest_cache
