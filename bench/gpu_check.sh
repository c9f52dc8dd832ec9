#!/usr/bin/env bash
# One prepared run on a lent GPU machine: does tuneval itself (not a standalone bench) train,
# evaluate and test on CUDA? Run bench/gpu_prepare.sh here first and carry .gpuenv.
#   1. a SmolLM2-135M-shaped model with random weights (the real checkpoint cannot travel):
#      `tuneval train` full / LoRA / QLoRA on 1,024 DialogSum examples (precision auto), each
#      with its after-training evaluation; then `tuneval eval` of a saved adapter (generation)
#      and of a QLoRA adapter on COPA/BoolQ (log-likelihood), so the standalone loaders run too;
#   2. scale-out: `accelerate launch` with recipes/accelerate/ddp.yaml and fsdp.yaml (FSDP2) over every
#      GPU the machine has (full fine-tuning and LoRA), then `tuneval eval` over the same processes
#      with torchrun. With one GPU it says so and runs the single-GPU paths: FSDP2 in one process
#      (the Trainer's fully_shard, gathered save and reload still run) and no DDP;
#   3. the unit tests with the GPU visible (TUNEVAL_TEST_GPU=1; 12 workers), log in $OUT/pytest.txt.
# Writes $OUT/gpu_check.txt (everything printed), $OUT/gpu_check.json (each run's metrics) and
# $OUT/scale_out.md (tokens/s, peak memory and the loss curve of each scale-out run): copy the
# last two to bench/results/ as gpu_check_<gpu>.json and scale_out_<gpu>.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.txt") 2>&1
rm -rf /tmp/site; python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpuenv/whl/*.whl || exit 1
cp -r .gpuenv/site/* /tmp/site/
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TUNEVAL_DATA_DIR=$PWD/.gpuenv/data
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, peft, bitsandbytes; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'bitsandbytes', bitsandbytes.__version__)"
python3 - <<'PY'
import glob, shutil, torch
from pathlib import Path
from transformers import AutoConfig, AutoModelForCausalLM
torch.manual_seed(0)
AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(".gpuenv/smollm2-shape")).save_pretrained("/tmp/smol")
for f in glob.glob(".gpuenv/smollm2-shape/*"):
    if Path(f).name not in ("config.json", "generation_config.json"):  # keep tokenizer_config.json
        shutil.copy(f, "/tmp/smol/")
print("random SmolLM2-135M-shaped model in /tmp/smol")
PY
T="python3 -m tuneval.cli"
COMMON="--set model=/tmp/smol --set data.train_examples=1024 --set eval.limit=40"
if [ "${PART:-all}" = all ]; then  # PART=scale runs only part 2 (one call of at most 10 minutes each)
echo "=== train full";  timeout 90 $T train recipes/dialogsum_full.yaml $COMMON --set output_dir=/tmp/runs/full
echo "=== train lora";  timeout 90 $T train recipes/dialogsum_lora.yaml $COMMON --set output_dir=/tmp/runs/lora
echo "=== train qlora"; timeout 90 $T train recipes/dialogsum_full.yaml $COMMON --set method=qlora --set train.learning_rate=1e-3 --set output_dir=/tmp/runs/qlora
echo "=== eval lora adapter (generation)"; timeout 60 $T eval --model /tmp/smol --adapter /tmp/runs/lora --task dialogsum --limit 40 --out /tmp/eval/lora
echo "=== eval qlora adapter (copa, boolq)"; timeout 60 $T eval --model /tmp/smol --adapter /tmp/runs/qlora --tasks copa,boolq --out /tmp/eval/qlora-bench
fi
NGPU=$(python3 -c "import torch; print(torch.cuda.device_count())")
LAUNCH="python3 -m accelerate.commands.launch --num_processes $NGPU --num_machines 1 --machine_rank 0"
SCALE="--set model=/tmp/smol --set data.train_examples=512 --set eval.limit=40 --set train.max_steps=16 --set train.logging_steps=1"
if [ "$NGPU" -ge 2 ]; then
  echo "=== scale out: $NGPU GPUs, one process each"
  CONFIGS="ddp fsdp"
else
  echo "=== scale out: only $NGPU GPU here: DDP needs 2+, so the single-GPU paths run (FSDP2 in one process)"
  CONFIGS="fsdp"
fi
for cfg in $CONFIGS; do
  for m in full lora; do
    echo "=== accelerate launch $cfg x$NGPU, $m"
    timeout 150 $LAUNCH --config_file recipes/accelerate/$cfg.yaml -m tuneval.cli train recipes/dialogsum_$m.yaml \
      $SCALE --set output_dir=/tmp/runs/scale-$cfg-$m
  done
done
echo "=== eval of the FSDP LoRA result: one process, then $NGPU (torchrun); the same results?"
EV="-m tuneval.cli eval --model /tmp/smol --adapter /tmp/runs/scale-fsdp-lora --task dialogsum --limit 40"
timeout 60 python3 $EV --out /tmp/eval/scale-x1
timeout 60 python3 -m torch.distributed.run --standalone --nproc_per_node "$NGPU" $EV --out /tmp/eval/scale-x$NGPU
python3 - "$OUT/scale_out.md" "$NGPU" <<'PY'
import json, sys
from pathlib import Path
n = sys.argv[2]
lines = [f"# Scale-out on {n} GPU(s)", "", "| run | processes | tokens/s | peak memory MB | loss curve (every step) |",
         "|---|---:|---:|---:|---|"]
for run in sorted(Path("/tmp/runs").glob("scale-*")):
    m = run / "metrics.json"
    if not m.is_file():
        lines.append(f"| {run.name} | {n} | failed | | |")
        continue
    m = json.loads(m.read_text())
    log = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
    curve = " ".join(f"{r['loss']:.3f}" for r in log if "loss" in r)
    lines.append(f"| {run.name} | {n} | {m['train_tokens_per_second']:.0f} | {m['peak_memory_mb']:.0f} | {curve} |")
one, many = Path("/tmp/eval/scale-x1/results.json"), Path(f"/tmp/eval/scale-x{n}/results.json")
if one.is_file() and many.is_file():
    a, b = json.loads(one.read_text()), json.loads(many.read_text())
    same = sum(x["prediction"] == y["prediction"] for x, y in zip(a["examples"], b["examples"]))
    lines += ["", f"eval over {n} processes: {same}/{len(a['examples'])} predictions identical to one process; "
              f"rouge1 {a['metrics']['rouge1']:.4f} (1) vs {b['metrics']['rouge1']:.4f} ({n})"]
Path(sys.argv[1]).write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
python3 - "$OUT/gpu_check.json" <<'PY'
import json, sys
from pathlib import Path
keep = ("method", "device", "precision", "trainable_params", "all_params", "train_tokens", "train_seconds",
        "train_tokens_per_second", "peak_memory_mb", "peak_memory_kind", "train_loss", "global_step")
out = {m: {k: json.loads(p.read_text()).get(k) for k in keep}
       for m in ("full", "lora", "qlora", *(p.name for p in Path("/tmp/runs").glob("scale-*")))
       if (p := Path(f"/tmp/runs/{m}/metrics.json")).is_file()}
for d in ("lora", "qlora-bench"):
    for p in Path(f"/tmp/eval/{d}").glob("*.json"):
        out[f"eval/{d}/{p.name}"] = json.loads(p.read_text()).get("metrics") if p.name == "results.json" else p.name
Path(sys.argv[1]).write_text(json.dumps(out, indent=1, default=str))
print(json.dumps(out, indent=1, default=str))
PY
[ "${PART:-all}" = all ] || exit 0
echo "=== unit tests with a GPU present"
TUNEVAL_TEST_GPU=1 timeout $(( ${DEADLINE:-400} - SECONDS > 30 ? ${DEADLINE:-400} - SECONDS : 30 )) python3 -m pytest -q -p xdist -n 12 -p no:cacheprovider --tb=short -rfE tests > "$OUT/pytest.txt" 2>&1
grep -E "^(FAILED|ERROR)|passed|failed" "$OUT/pytest.txt" | tail -n 80
