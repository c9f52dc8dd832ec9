#!/usr/bin/env bash
# Builds .gpuenv/ (ignored) for bench/gpu_check.sh: what the GPU machine lacks, small enough to
# travel (64 MiB): pinned wheels it has other versions of or none (transformers, peft, rouge-score,
# nltk, gguf, fastapi...), bitsandbytes cut down to its CPU and CUDA 13.0 libraries, SmolLM2-135M's
# config and tokenizer without weights (the check initialises random weights of the same shape:
# the 0.5 GB checkpoint cannot travel), and slices of DialogSum / COPA / BoolQ from DATA_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${DATA_DIR:-../shared/data}
PY=${PY:-.venv/bin/python}
G=.gpuenv
grep -qx "/$G/" .git/info/exclude || echo "/$G/" >> .git/info/exclude
rm -rf $G && mkdir -p $G/whl $G/site $G/smollm2-shape $G/data/dialogsum $G/data/superglue/copa $G/data/superglue/boolq
pin() { grep -i -E "^${1//[-_]/[-_]}==" constraints.txt | head -1; }
PLAT="--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform any"
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $PLAT -d $G/whl \
  $(for p in transformers peft accelerate nltk gguf typer rich fastapi uvicorn pydantic pydantic_core annotated-types \
             typing-inspection starlette click defusedxml; do pin "$p"; done)
$PY -m pip wheel -q --no-deps -w $G/whl "$(pin rouge-score)"
SITE=$($PY -c "import bitsandbytes, os; print(os.path.dirname(os.path.dirname(bitsandbytes.__file__)))")
cp -r "$SITE/bitsandbytes" "$SITE"/bitsandbytes-*.dist-info $G/site/
find $G/site -name __pycache__ -prune -exec rm -rf {} +
find $G/site/bitsandbytes -name 'libbitsandbytes_*.so' ! -name '*_cpu.so' ! -name '*_cuda130.so' -delete
MODEL=$($PY -c "from tuneval.models.catalogue import ensure_embedded; print(ensure_embedded('smollm2-135m-instruct'))")
cp "$MODEL"/*.json "$MODEL"/*.jinja $G/smollm2-shape/ 2>/dev/null || cp "$MODEL"/*.json $G/smollm2-shape/
head -n 1024 "$DATA_DIR/dialogsum/train.jsonl" > $G/data/dialogsum/train.jsonl
head -n 100 "$DATA_DIR/dialogsum/validation.jsonl" > $G/data/dialogsum/validation.jsonl
head -n 100 "$DATA_DIR/superglue/copa/val.jsonl" > $G/data/superglue/copa/val.jsonl
head -n 200 "$DATA_DIR/superglue/boolq/val.jsonl" > $G/data/superglue/boolq/val.jsonl
du -sh $G
