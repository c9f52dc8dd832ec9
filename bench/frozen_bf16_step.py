"""A lever measured and not kept: LoRA's frozen base weights stored in bf16 instead of fp32.

Under bf16 autocast every frozen fp32 weight is cast to bf16 on each use (autocast caches casts
only for weights that require grad), so the profile's `aten::copy_` share includes ~106 M weight
elements copied per forward. Storing them in bf16 once gives the same bits to the matmuls. This
script checks that (same loss, gradient difference printed) and times one LoRA r32 q/v step
(2 rows x 1,024 random tokens, dropout 0.05) both ways, alternating in one process.

    LD_PRELOAD=<libtcmalloc_minimal.so.4> .venv/bin/python bench/frozen_bf16_step.py [--repeats 6]
"""

import argparse
import copy
import time

import torch
from peft import LoraConfig, get_peft_model

from tuneval.models import load_model
from tuneval.runs import machine


def build(base, bf16_base: bool):
    torch.manual_seed(1)  # the same LoRA A in both
    net = get_peft_model(copy.deepcopy(base), LoraConfig(r=32, lora_alpha=32, lora_dropout=0.05,
                                                         target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    if bf16_base:
        for name, module in net.named_modules():
            if type(module) is torch.nn.Linear and not module.weight.requires_grad and "lm_head" not in name:
                module.weight.data = module.weight.data.to(torch.bfloat16)
    return net


def step(net, ids):
    torch.manual_seed(0)  # the same dropout masks in both
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = net(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = [p.grad.clone() for p in net.parameters() if p.requires_grad]
    net.zero_grad(set_to_none=True)
    return time.perf_counter() - start, loss.item(), grads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=6)
    a = ap.parse_args()
    torch.manual_seed(0)
    loaded = load_model("smollm2-135m-instruct", precision="fp32", device="cpu")
    ids = torch.randint(0, loaded.model.config.vocab_size, (2, 1024))
    nets = {"fp32 frozen weights": build(loaded.model, False), "bf16 frozen weights": build(loaded.model, True)}
    seconds = {k: [] for k in nets}
    last = {}
    for _ in range(a.repeats):
        for name, net in nets.items():
            s, loss, grads = step(net, ids)
            seconds[name].append(s)
            last[name] = (loss, grads)
    print(f"Machine: {machine()}")
    for name, s in seconds.items():
        print(f"{name}: loss {last[name][0]:.6f}, seconds per step {' / '.join(f'{x:.3f}' for x in s)}, "
              f"median of the last {a.repeats - 2}: {sorted(s[2:])[len(s[2:]) // 2]:.3f}")
    (_, a_grads), (_, b_grads) = last.values()
    print(f"largest gradient difference: {max((x - y).abs().max().item() for x, y in zip(a_grads, b_grads))}")


if __name__ == "__main__":
    main()
