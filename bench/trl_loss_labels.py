"""Is TRL's lower mean train loss a different model, or a different count? Its extra label.

`bench/train_throughput.py` reports TRL's mean train loss ~3% below tuneval's on the same
examples. TRL's completion is the chat template's assistant turn, which ends `<|im_end|>` and a
newline; tuneval's labels end at `<|im_end|>`. So TRL averages over one more label per example,
one the model predicts almost for free, and a mean per token falls by about n/(n+1) without any
difference in what was learnt. This script measures that factor on the bench's own examples with
the base model (fp32, each example alone): the loss per token over tuneval's labels, and over the
same labels plus the newline. With `--throughput-json` it puts each TRL row's train loss back on
tuneval's labels (divides by the factor) beside tuneval's, which is the ±1% comparison issue 16
asks for.

    .venv/bin/python bench/trl_loss_labels.py --data-dir ../shared/data \
        [--throughput-json bench/results/train_throughput_cpu_amx.json] [--out runs/bench-trl-loss-labels]

Writes OUT/trl_loss_labels.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))


def label_losses(a: argparse.Namespace) -> dict:
    """Loss per token with and without the newline label, over the bench's examples (base model)."""
    import torch

    import train_throughput as tt
    from tuneval.models import load_model
    from tuneval.train.trainer import build_examples

    args = argparse.Namespace(model=a.model, data_dir=a.data_dir, examples=a.examples, pad_to=512, lr=1e-3,
                              batch_size=8, method="lora", seed=42, eval_examples=0)
    recipe = tt.recipe_for(args, Path(a.out))
    loaded = load_model(a.model, precision="fp32", device="cpu")
    examples, _ = build_examples(recipe, loaded)
    newline = loaded.tokenizer("\n", add_special_tokens=False)["input_ids"]
    sums, counts, newline_losses = [0.0, 0.0], [0, 0], []
    with torch.no_grad():
        for ex in examples:
            ids, labels = list(ex["input_ids"]) + newline, list(ex["labels"]) + newline
            logits = loaded.model(torch.tensor([ids])).logits[0, :-1].float()
            target = torch.tensor(labels[1:])
            kept = torch.nn.functional.cross_entropy(logits, target.clamp(min=0), reduction="none")[target != -100]
            sums[0] += kept[:-len(newline)].sum().item(); counts[0] += len(kept) - len(newline)
            sums[1] += kept.sum().item(); counts[1] += len(kept)
            newline_losses.extend(kept[-len(newline):].tolist())
    tuneval, trl = sums[0] / counts[0], sums[1] / counts[1]
    return {"examples": len(examples), "labels_per_example": {"tuneval": counts[0] / len(examples), "trl": counts[1] / len(examples)},
            "loss_per_token": {"tuneval_labels": tuneval, "with_newline": trl}, "factor": trl / tuneval,
            "newline_loss": {"mean": sum(newline_losses) / len(newline_losses), "max": max(newline_losses)}}


def compare(result: dict, throughput: dict) -> list[dict]:
    """Each TRL row's mean train loss on tuneval's labels, beside tuneval's own."""
    rows = {r["path"]: r for r in throughput["rows"]}
    mine = rows["tuneval"]["train_loss"]
    return [{"path": name, "train_loss": r["train_loss"], "on_tuneval_labels": r["train_loss"] / result["factor"],
             "tuneval_train_loss": mine, "tuneval_relative": mine / (r["train_loss"] / result["factor"]) - 1}
            for name, r in rows.items() if name.startswith("trl")]


def markdown(result: dict, a: argparse.Namespace) -> str:
    from tuneval.runs import machine

    lab, loss = result["labels_per_example"], result["loss_per_token"]
    lines = [f"# TRL's extra label and the mean train loss\n\nMachine: {machine()}. Base model `{a.model}`, fp32, "
             f"the first {result['examples']} DialogSum training examples as bench/train_throughput.py builds them.\n",
             f"- labels per example: tuneval {lab['tuneval']:.2f}, TRL {lab['trl']:.2f} (the newline after `<|im_end|>`)",
             f"- loss per token: tuneval's labels {loss['tuneval_labels']:.4f}, with the newline {loss['with_newline']:.4f}: "
             f"**factor {result['factor']:.4f}**",
             f"- the newline's own loss: mean {result['newline_loss']['mean']:.5f}, max {result['newline_loss']['max']:.5f}"]
    if result.get("compare"):
        lines += [f"\nFrom {a.throughput_json} (each TRL row's train loss divided by the factor):\n",
                  "| path | mean train loss | on tuneval's labels | tuneval's | tuneval relative |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {c['path']} | {c['train_loss']:.4f} | {c['on_tuneval_labels']:.4f} | {c['tuneval_train_loss']:.4f} | "
                  f"{c['tuneval_relative']:+.2%} |" for c in result["compare"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    import json

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--data-dir", default=os.environ.get("TUNEVAL_DATA_DIR", "../shared/data"))
    p.add_argument("--examples", type=int, default=40, help="As bench/train_throughput.py --examples.")
    p.add_argument("--throughput-json", help="A train_throughput.json whose TRL rows to put on tuneval's labels.")
    p.add_argument("--out", default="runs/bench-trl-loss-labels")
    a = p.parse_args()
    a.data_dir = str(Path(a.data_dir).resolve())
    from tuneval.io import atomic_write_json, atomic_write_text
    from tuneval.runs import machine

    result = label_losses(a)
    if a.throughput_json:
        result["compare"] = compare(result, json.loads(Path(a.throughput_json).read_text()))
    out = Path(a.out)
    atomic_write_json(out / "trl_loss_labels.json", {"machine": machine(), "args": vars(a), **result})
    text = markdown(result, a)
    atomic_write_text(out / "trl_loss_labels.md", text)
    print(text)


if __name__ == "__main__":
    main()
