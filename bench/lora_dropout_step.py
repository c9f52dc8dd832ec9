"""One training step of LoRA on every linear layer (r 16, alpha 32) of the embedded model, with
lora_dropout 0.05 and 0, alternating in one process so that other load on the CPU hits both
alike. With dropout, PEFT copies every adapted layer's input through nn.Dropout (7 per block);
with 0 it is an Identity. Prints seconds per step (best of --repeats) and tokens/s for each.

    .venv/bin/python bench/lora_dropout_step.py [--precision bf16] [--tokens 1024] [--rows 2]
"""

import argparse
import copy
import time

import torch
from peft import LoraConfig, get_peft_model

from tuneval.models import load_model
from tuneval.precision import resolve_precision
from tuneval.runs import machine


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--rows", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    precision = resolve_precision(a.precision)
    torch.manual_seed(0)
    loaded = load_model("smollm2-135m-instruct", precision="fp32", device="cpu")  # fp32 master weights, as training
    ids = torch.randint(0, loaded.model.config.vocab_size, (a.rows, a.tokens))
    nets = {d: get_peft_model(copy.deepcopy(loaded.model), LoraConfig(
        r=16, lora_alpha=32, lora_dropout=d, target_modules="all-linear", task_type="CAUSAL_LM")) for d in (0.05, 0.0)}

    def step(net) -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = net(input_ids=ids, labels=ids).loss
        loss.backward()
        net.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    times: dict[float, list[float]] = {d: [] for d in nets}
    for net in nets.values():
        step(net)  # warm-up
    for _ in range(a.repeats):
        for d, net in nets.items():
            times[d].append(step(net))
    print(f"machine: {machine()}, precision {precision}, {a.rows} x {a.tokens} tokens per step")
    for d, ts in times.items():
        print(f"lora_dropout {d}: best {min(ts):.2f} s per step ({a.rows * a.tokens / min(ts):.0f} tokens/s); "
              f"all {', '.join(f'{t:.2f}' for t in ts)}")
    print(f"dropout 0 over 0.05: {min(times[0.05]) / min(times[0.0]):.2f}x")


if __name__ == "__main__":
    main()
