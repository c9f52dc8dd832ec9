#!/usr/bin/env bash
# Build llama.cpp's llama-server and llama-bench (CPU) from the llama.cpp that llama-cpp-python's
# pinned sdist vendors: the same source as tuneval's GGUF converter (src/tuneval/serve/gguf.py).
# Needs cmake and a C++ compiler; about 15 minutes on 2 cores. Prints the directory of the binaries.
#   bash bench/build_llama_cpp.sh [WORKDIR]     (default: $TUNEVAL_HOME or ~/.cache/tuneval, /llama.cpp-build)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
VERSION=$($PY -c "from tuneval.serve.gguf import LLAMA_CPP_PYTHON as v; print(v)")
SHA=$($PY -c "from tuneval.serve.gguf import SDIST_SHA256 as s; print(s)")
WORK=${1:-${TUNEVAL_HOME:-$HOME/.cache/tuneval}/llama.cpp-build}
SRC="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"
mkdir -p "$WORK"
if [ ! -f "$SRC/CMakeLists.txt" ]; then
  echo "llama-cpp-python==$VERSION --hash=sha256:$SHA" > "$WORK/requirements.txt"
  $PY -m pip download -q --no-deps --no-binary :all: --require-hashes -r "$WORK/requirements.txt" -d "$WORK"
  tar xzf "$WORK/llama_cpp_python-$VERSION.tar.gz" -C "$WORK"
fi
cmake -S "$SRC" -B "$SRC/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON >"$WORK/cmake.log"
cmake --build "$SRC/build" --target llama-server llama-bench -j"$(nproc)" >"$WORK/build.log"
echo "$SRC/build/bin"
