# One command sets everything up and runs the app; one sets everything up and tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= $(abspath ../shared)
export MESOLIVE_MODEL_DIR ?= $(SHARED)/models
# make run SOURCE=webcam:0 (or screen:1, window:Zoom, a file, rtsp://…); default: the picker
SOURCE ?=

.PHONY: run scan test setup system-deps lint bench clean

system-deps:
	bash scripts/system-deps.sh

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch==2.13.0 (CPU) is pinned: an unpinned torch pulls several GB of CUDA wheels.
setup: system-deps $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,train,gui,cluster,triton,openvino]"

# The main job: the desktop app (with no display it says so in one line and names `mesolive scan`).
run: setup
	$(BIN)/mesolive $(if $(SOURCE),--source '$(SOURCE)')

# Headless: scan the labelled clips and score the DFDC crops.
scan: setup
	$(BIN)/mesolive scan $(SHARED)/videos --every 3 --json artifacts/scan.json --force || test $$? -eq 1
	$(BIN)/mesolive evaluate $(SHARED)/faces/dfdc --plot artifacts/dfdc.png --force

test: setup
	$(BIN)/ruff check mesolive tests bench scripts
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/classifier.py
	$(BIN)/python bench/pipeline.py

clean:
	rm -rf $(VENV) artifacts .pytest_cache
