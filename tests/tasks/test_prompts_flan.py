import pytest

from tuneval.tasks.mixtures import draw_templates
from tuneval.tasks import get_task as load_task
from tuneval.tasks.prompts import TemplateSet, placeholders
from tuneval.errors import TunevalError


def test_dialogsum_template_set_is_flan_style():
    task = load_task("dialogsum")
    ts = task.templates
    assert len(ts.prompts) >= 5
    assert all(placeholders(p) == {"dialogue"} for p in ts.prompts)
    assert "Briefly summarize that dialogue." in ts.prompts[0]
    assert ts.prompts[ts.eval_index].startswith("Summarize the following conversation.")
    prompt, target = ts.render({"dialogue": "A: hi {not a field}\nB: hello", "summary": "They greet."}, 0)
    assert prompt == "A: hi {not a field}\nB: hello\n\nBriefly summarize that dialogue."
    assert target == "They greet."


def test_template_draw_is_seeded_and_uses_every_phrasing():
    ts = load_task("dialogsum").templates
    every = list(range(len(ts.prompts)))
    a, b, c = draw_templates(500, 1, every), draw_templates(500, 1, every), draw_templates(500, 2, every)
    assert a == b and a != c
    assert set(a) == set(range(len(ts.prompts)))


def test_unknown_placeholder_is_rejected():
    ts = TemplateSet("t", ("{dialogue} {oops}",), "{summary}")
    with pytest.raises(TunevalError, match=r"t.yaml: templates\[0\] uses unknown field"):
        ts.validate({"dialogue", "summary"}, "t.yaml")
