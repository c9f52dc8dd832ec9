"""BIG-Bench Hard: the three families are lm-eval 0.4.13's, byte for byte (its own task configs, rendered by
its TaskManager on the same local files), its filters give what ours give, and the data never trains."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import SHARED_DATA
from tuneval.errors import TunevalError
from tuneval.evaluate.harness import _fewshot_pool, build_contexts
from tuneval.metrics.registry import Scorer
from tuneval.tasks import load_registry, load_rows

FAMILIES = ("zeroshot", "fewshot", "cot_fewshot")
SUBSETS = ("snarks", "date_understanding", "word_sorting", "sports_understanding", "multistep_arithmetic_two",
           "dyck_languages")
_CANDIDATES = [SHARED_DATA, Path(os.environ.get("TUNEVAL_DATA_DIR") or "/nonexistent")]
DATA = next((d for d in _CANDIDATES if (d / "bbh" / "cot-prompts").is_dir()), None)
needs_data = pytest.mark.skipif(DATA is None, reason="BIG-Bench Hard data (../shared/data/bbh) not here")


def test_the_bbh_groups():
    reg = load_registry()
    for family in FAMILIES:
        assert len(reg.groups[f"bbh_{family}"]) == 27
    assert reg.groups["bbh"] == reg.groups["bbh_cot_fewshot"]
    zero = reg.tasks["bbh_zeroshot_snarks"]
    assert [p.name for p in zero.filters] == ["flexible-extract", "strict-match"] and not zero.chat_template
    assert zero.until == ["</s>", "Q:", "<|im_end|>"] and zero.max_gen_toks == 256
    cot = reg.tasks["bbh_cot_fewshot_snarks"]
    assert [p.name for p in cot.filters] == ["get-answer"] and cot.max_gen_toks == 1024 and cot.num_fewshot == 3


def _lm_eval_tasks(tmp_path: Path, names: list[tuple[str, str]]) -> dict[tuple[str, str], object]:
    """lm-eval's own bbh task files, only the data source swapped for the local json (as bench/crosscheck_lm_eval.py)."""
    import lm_eval
    from lm_eval.tasks import TaskManager, get_task_dict

    root = Path(lm_eval.__file__).parent / "tasks" / "bbh"
    wanted = {}
    for family, subset in names:
        name = f"xc_{family}_{subset}"
        spec = {"include": str(root / family / f"{subset}.yaml"), "task": name, "dataset_path": "json",
                "dataset_name": None, "dataset_kwargs": {"data_files": {"test": str(DATA / "bbh" / f"{subset}.json")},
                                                         "field": "examples"}}
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(spec))
        wanted[name] = (family, subset)
    tasks = get_task_dict(list(wanted), TaskManager(include_path=str(tmp_path), include_defaults=False))
    return {wanted[name]: task for name, task in tasks.items()}


def _lm_eval_prompts(tmp_path: Path, names: list[tuple[str, str]], limit: int) -> dict[tuple[str, str], list]:
    out = {}
    for key, task in _lm_eval_tasks(tmp_path, names).items():
        task.build_all_requests(limit=limit, rank=0, world_size=1)
        out[key] = [i.args for i in sorted(task.instances, key=lambda i: i.doc_id)]
    return out


@needs_data
def test_prompts_and_stop_strings_are_lm_evals_byte_for_byte(tmp_path):
    pytest.importorskip("lm_eval")
    names = [(f, s) for f in FAMILIES for s in SUBSETS]
    theirs = _lm_eval_prompts(tmp_path, names, limit=3)
    reg = load_registry()
    for family, subset in names:
        task = reg.tasks[f"bbh_{family}_{subset}"]
        docs = load_rows(task, "test", DATA)[:3]
        pool = _fewshot_pool(task, "test", DATA, docs) if task.num_fewshot else ([], False)
        ours = build_contexts(task, docs, task.num_fewshot, *pool, seed=1234)
        assert ours == [args[0] for args in theirs[family, subset]], (family, subset)
        assert task.until == theirs[family, subset][0][1]["until"]
        assert task.max_gen_toks == theirs[family, subset][0][1].get("max_gen_toks", 256)


GENERATIONS = [" (A)", " (b) because", " The answer is False.", " yes, plausible", " Not plausible at all",
               " The word is -12 and 3", " ] } )", " apple banana", " I think the second: B", "", " no", " valid",
               " it tells the truth", " 7.\n"]


@needs_data
@pytest.mark.parametrize("subset", ["snarks", "boolean_expressions", "sports_understanding", "web_of_lies",
                                    "multistep_arithmetic_two", "dyck_languages", "word_sorting", "formal_fallacies",
                                    "navigate"])
def test_flexible_extract_gives_what_lm_evals_filters_give(subset, tmp_path):
    """lm-eval's own filter objects (its bbh/zeroshot/utils.py for the BBH extractors) on the same generations."""
    pytest.importorskip("lm_eval")
    task = _lm_eval_tasks(tmp_path, [("zeroshot", subset)])["zeroshot", subset]
    ensemble = next(f for f in task._filters if f.name == "flexible-extract")
    ours = load_registry().tasks[f"bbh_zeroshot_{subset}"]
    pipeline = next(p for p in ours.filters if p.name == "flexible-extract")
    docs = load_rows(ours, "test", DATA)[:2]
    for doc in docs:
        clean = {k: v for k, v in doc.items() if not k.startswith("_")}
        theirs = [[g] for g in GENERATIONS]
        for f in ensemble.filters:
            theirs = f().apply(theirs, [clean] * len(GENERATIONS))
        assert [pipeline.apply(g, doc) for g in GENERATIONS] == list(theirs), subset


@pytest.mark.parametrize("pred, ref, opts", [
    (" False.", "False", {"ignore_case": True, "regexes_to_ignore": ["\\.$", ",", "\n", "\\\\", '"']}),
    ("false\n", "False", {"ignore_case": True, "regexes_to_ignore": ["\\.$", ",", "\n", "\\\\", '"']}),
    ('"1,000"', "1000", {"regexes_to_ignore": [",", '"']}),
    ("A-1!", "a1", {"ignore_case": True, "ignore_punctuation": True}),
    ("abc123", "abc", {"ignore_numbers": True}),
    (" (B)", "(B)", {}),
])
def test_exact_match_normalises_as_lm_eval_through_a_filter(pred, ref, opts):
    pytest.importorskip("lm_eval")
    from lm_eval.api.metrics import exact_match_hf_evaluate

    theirs = exact_match_hf_evaluate([pred], [ref], **opts)["exact_match"]
    spec = {"metric": "exact_match", **opts, "strip": False}
    ours = Scorer("generate_until", [spec], [{"prediction": pred, "references": [ref]}]).score()["exact_match"]
    assert ours == theirs and np.isfinite(ours)


def test_bbh_never_goes_into_a_training_mix(tmp_path):
    from tuneval.config import load_recipe
    from tuneval.tasks.mixtures import resolve_mixture

    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: x\ntask: bbh_cot_fewshot_snarks\n")
    with pytest.raises(TunevalError) as e:
        resolve_mixture(load_recipe(recipe))
    message = str(e.value)
    assert "\n" not in message and "evaluation-only" in message and "canary" in message
    assert "bbh_cot_fewshot_snarks" in message
