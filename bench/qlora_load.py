"""QLoRA's base: quantized as it loads (BitsAndBytesConfig at from_pretrained) or in place after a
full-precision load (models/quantize.py). Prints peak RSS and load time of each, each in its own
process, whether the packed 4-bit weights are identical, and how far each path's 4-bit matmul is
from the dequantized weights (the numbers behind methods/qlora.py's default).

    .venv/bin/python bench/qlora_load.py [--model smollm2-135m-instruct] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, torch
mode, model = sys.argv[1], sys.argv[2]
from tuneval.models import load_model
from tuneval.methods import get_method
start = time.perf_counter()
spec = get_method("qlora")
if mode == "at-load":
    m = load_model(model, precision="fp32", device="cpu",
                   quantization=spec.load_quantization(spec.settings(quantize_at_load=True))).model
else:
    from tuneval.models.quantize import quantize_4bit
    m = quantize_4bit(load_model(model, precision="fp32", device="cpu").model)
seconds = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
import bitsandbytes.functional as F
layer = m.model.layers[0].self_attn.q_proj
torch.save(layer.weight.data.clone(), sys.argv[3])  # before any forward: bitsandbytes may repack on the CPU
torch.manual_seed(0)
x = torch.randn(1, 12, layer.in_features)
with torch.no_grad():
    ref = x @ F.dequantize_4bit(layer.weight.data, layer.weight.quant_state).T
    err = (layer(x) - ref).abs().max().item()
print(json.dumps({"mode": mode, "seconds": seconds, "peak_rss_mb": rss, "max_abs_vs_dequantized": err}))
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    import torch

    from tuneval.runs import machine

    rows = []
    for i in range(a.repeats):
        for mode in ("in-place", "at-load"):
            out = subprocess.run([sys.executable, "-c", CHILD, mode, a.model, f"/tmp/qlora_{mode}.pt"],
                                 capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            rows.append(json.loads(out))
    same = torch.equal(torch.load("/tmp/qlora_in-place.pt"), torch.load("/tmp/qlora_at-load.pt"))
    print(f"machine: {machine()}; model {a.model}")
    print("| path | load + quantize s | peak RSS MB | max abs (4-bit matmul - dequantized) |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} | {r['max_abs_vs_dequantized']:.4f} |")
    print(f"packed 4-bit weights identical: {same}")


if __name__ == "__main__":
    main()
