"""Log-probabilities for the server: a prompt scored in one forward pass, and each generated token's.

Both are the raw model distribution, `log_softmax` of the logits in fp32, before any temperature
or top-p (vLLM's default, "raw_logprobs"): the numbers say what the model thinks, not how one
request sampled from it.

- `score_prompts` runs prompts through the model (the adapter already switched on by the bank,
  or PEFT `adapter_names` for a mixed LoRA batch), right-padded so every row keeps the positions
  it has alone, and returns for each prompt token after the first its log-probability and the
  k most likely tokens at that position, plus the distribution after the last prompt token.
- `StepLogprobs` is a logits processor that only looks: during `generate` it keeps the last
  step's log-probabilities, which the bank's per-row stopping criterion reads for the token just
  chosen. transformers applies custom processors before the sampling warpers (temperature,
  top-p), so what it sees is the raw distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import LogitsProcessor

MAX_LOGPROBS = 20  # the most top tokens a request may ask for (vLLM's default max_logprobs)
SCORE_FLOATS = 1 << 25  # logits one scoring pass may hold (rows x padded length x vocabulary): 128 MB in fp32


@dataclass(frozen=True)
class TokenLogprob:
    """One position: the log-probability of the token there, and the k most likely (id, log-prob), best first."""

    logprob: float
    top: tuple[tuple[int, float], ...] = ()

    def first(self, k: int) -> TokenLogprob:
        return self if len(self.top) <= k else TokenLogprob(self.logprob, self.top[:k])


def pick(logprobs: torch.Tensor, chosen: list[int], k: int) -> list[TokenLogprob]:
    """For each row of `logprobs` (n x vocabulary), the chosen token's log-prob and the top k."""
    if not chosen:
        return []
    at = torch.tensor(chosen, device=logprobs.device)[:, None]
    values = logprobs.gather(1, at)[:, 0].tolist()
    k = min(k, logprobs.shape[-1])
    if k <= 0:
        return [TokenLogprob(v) for v in values]
    top_v, top_i = logprobs.topk(k, dim=-1)
    return [TokenLogprob(v, tuple(zip(ids, lps))) for v, ids, lps in zip(values, top_i.tolist(), top_v.tolist())]


def chunks(lengths: list[int], vocabulary: int, budget: int = SCORE_FLOATS) -> list[list[int]]:
    """Indices into `lengths` in groups whose padded logits (rows x longest x vocabulary) fit `budget`
    (a group of one row always fits: a prompt is never refused for its logits)."""
    groups: list[list[int]] = []
    longest = 0
    for i, n in enumerate(lengths):
        if groups and (len(groups[-1]) + 1) * max(longest, n) * vocabulary <= budget:
            groups[-1].append(i)
            longest = max(longest, n)
        else:
            groups.append([i])
            longest = n
    return groups


def score_prompts(model, prompts: list[list[int]], ks: list[int], pad_id: int,
                  adapter_names: list[str] | None = None) -> list[tuple[list[TokenLogprob], torch.Tensor]]:
    """Per prompt: (a TokenLogprob for each token after the first, the log-probs after the last token).

    Right padding: each row's positions are those it has alone, and causal attention never looks
    at the padding behind it. Prompt-learning adapters prepend virtual tokens, so the logits of the
    prompt are the last `longest` positions.
    """
    longest = max(len(p) for p in prompts)
    device = next(model.parameters()).device
    ids = torch.tensor([p + [pad_id] * (longest - len(p)) for p in prompts], device=device)
    mask = torch.tensor([[1] * len(p) + [0] * (longest - len(p)) for p in prompts], device=device)
    extra = {"adapter_names": adapter_names} if adapter_names is not None else {}
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False, **extra).logits[:, -longest:]
    out = []
    for row, (prompt, k) in enumerate(zip(prompts, ks)):
        logprobs = logits[row, :len(prompt)].float().log_softmax(-1)
        out.append((pick(logprobs[:-1], prompt[1:], k), logprobs[-1]))
    return out


class StepLogprobs(LogitsProcessor):
    """Keeps each step's raw log-probabilities (batch x vocabulary); changes nothing."""

    def __init__(self):
        self.last: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.last = scores.float().log_softmax(-1)
        return scores

    def __deepcopy__(self, memo):  # PEFT deep-copies generate kwargs for seq2seq prompt tuning
        return self
