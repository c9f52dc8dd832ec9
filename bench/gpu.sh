#!/usr/bin/env bash
# One prepared run for a GPU machine (no internet there): LoRA and full fine-tuning
# throughput, peak memory and MFU in bf16 on a random 1B-class Llama. Uses the machine's
# own torch/transformers/peft (nothing to install there).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
export PYTHONUNBUFFERED=1
python3 bench/gpu_bench.py --seq-len 2048 --batch-size 8 --steps 10 --out "$OUT/gpu_bench.json" 2>&1 | tee "$OUT/gpu_bench.txt"
echo "--- with gradient checkpointing"
python3 bench/gpu_bench.py --seq-len 2048 --batch-size 8 --steps 10 --checkpointing --out "$OUT/gpu_bench_ckpt.json" 2>&1 | tee "$OUT/gpu_bench_ckpt.txt"
