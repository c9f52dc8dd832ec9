"""Evaluating a model served elsewhere: lm-eval's local-completions requests, read back, end to end
through `tuneval eval --model local-completions` against a scripted server (tests/models/fake_openai.py).

Equality with a local model on the same weights is tested against `tuneval serve` itself
(tests/serve/test_eval_roundtrip.py)."""

from __future__ import annotations

import json

import pytest

from tests.models.fake_openai import FakeServer, echo_logprobs
from tuneval.cli import main as cli_main
from tuneval.evaluate import remote
from tuneval.evaluate.loglik import encode_pair
from tuneval.models.endpoint import open_endpoint

TASK = ('task: pick\noutput_type: multiple_choice\nvalidation_split: validation\ndata_files: {validation: pick/val.jsonl}\n'
        'doc_to_text: "Q: {{ q }}\\nA:"\ndoc_to_choice: ["yes", "no"]\ndoc_to_target: label\nmetric_list: [acc]\n')
GEN = ('task: say\noutput_type: generate_until\nvalidation_split: validation\ndata_files: {validation: pick/val.jsonl}\n'
       'doc_to_text: "Q: {{ q }}\\nA:"\ndoc_to_target: "{{ answer }}"\ngeneration_kwargs: {until: [".", "\\n", "Q:", "##", "stop5"]}\n'
       'metric_list: [exact_match]\n')


def main(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as e:
        cli_main(argv)
    return e.value.code


@pytest.fixture
def task_dirs(tmp_path):
    data, tasks = tmp_path / "data", tmp_path / "tasks"
    (data / "pick").mkdir(parents=True)
    tasks.mkdir()
    rows = [{"q": f"is {i} even?", "label": i % 2, "answer": f"x echo of s {i} even?"} for i in range(5)]
    (data / "pick" / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tasks / "pick.yaml").write_text(TASK)
    (tasks / "say.yaml").write_text(GEN)
    return data, tasks


def expected(prompt, positions) -> tuple[float, bool]:
    lp = echo_logprobs(prompt)
    total = sum(lp["token_logprobs"][i] for i in positions)
    greedy = all(lp["token_logprobs"][i] == max(lp["top_logprobs"][i].values()) for i in positions)
    return total, greedy


def test_text_prompts_find_the_continuation_by_text_offset():
    with FakeServer(["ok"]) as s:
        ep = open_endpoint("local-completions", f"base_url={s.url},model=m")
        got, stats = remote.loglikelihoods(ep, [("Q: is 3 even?\nA:", " no"), ("Q: x ", "yes"),
                                               ("Q: x ", "yes")], "scoring")
    ctx = "Q: is 3 even?\nA:"
    assert got[0] == expected(ctx + " no", range(len(ctx), len(ctx) + 3))
    assert got[1] == expected("Q: x yes", range(4, 8))  # the context's trailing space belongs to the continuation
    assert got[1] == got[2] and stats == {"requests": 3, "http_requests": 2} and len(s.seen) == 2
    assert {b["body"]["echo"] for b in s.seen} == {True} and s.seen[0]["body"]["max_tokens"] == 1
    assert got[0][1] and not got[1][1]  # the fake's position 7 is not its top choice


def test_a_tokenizer_sends_lm_evals_token_ids(tiny_llama_dir):
    with FakeServer(["ok"]) as s:
        ep = open_endpoint("local-completions", f"base_url={s.url},model=m,tokenizer={tiny_llama_dir}")
        got, _ = remote.loglikelihoods(ep, [("Question: why?\nAnswer:", " because")], "scoring")
    ctx, cont = encode_pair(ep.tokenizer, "Question: why?\nAnswer:", " because", "causal")
    assert s.seen[0]["body"]["prompt"] == ctx + cont
    assert got[0] == expected(ctx + cont, range(len(ctx), len(ctx) + len(cont)))


def test_servers_without_prompt_logprobs_are_named():
    with FakeServer(["no-logprobs"]) as s:
        ep = open_endpoint("local-completions", f"base_url={s.url},model=m")
        with pytest.raises(remote.EndpointError, match=r"/v1/completions: does not return the prompt's log-prob"):
            remote.loglikelihoods(ep, [("a", " b")], "scoring")
        chat = open_endpoint("local-chat-completions", f"base_url={s.url},model=m")
        with pytest.raises(remote.EndpointError, match="a chat endpoint gives no log-probabilities"):
            remote.loglikelihoods(chat, [("a", " b")], "scoring")


def test_eval_scores_an_endpoint_and_records_it_without_the_key(task_dirs, tmp_path, monkeypatch, capsys):
    data, tasks = task_dirs
    monkeypatch.setenv("MY_KEY", "sk-never-written-42")
    with FakeServer(["ok"]) as s:
        code = main(["eval", "--model", "local-completions", "--model-args",
                     f"base_url={s.url}/completions,model=m,num_concurrent=3,api_key_env=MY_KEY", "--tasks", "pick,say",
                     "--tasks-dir", str(tasks), "--data-dir", str(data), "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr()
    assert all(r["headers"]["Authorization"] == "Bearer sk-never-written-42" for r in s.seen)
    pick = json.loads((tmp_path / "out" / "pick" / "results.json").read_text())
    assert pick["endpoint"]["url"] == f"{s.url}/completions" and pick["endpoint"]["served_model"] == "m"
    assert pick["endpoint"]["server"]["model"]["owned_by"] == "fake" and pick["label"] == "m"
    for ex in pick["examples"]:
        prompt = ex["prompt"]
        assert ex["loglik"] == [expected(prompt + " " + c, range(len(prompt), len(prompt) + 1 + len(c)))[0]
                                for c in ex["choices"]]
    say = json.loads((tmp_path / "out" / "say" / "results.json").read_text())
    gen_bodies = [r["body"] for r in s.seen if "echo" not in r["body"]]
    assert len(gen_bodies) == 5 and all(b["temperature"] == 0 and b["seed"] == 1234 for b in gen_bodies)
    assert gen_bodies[0]["stop"] == [".", "\n", "Q:", "##"]  # OpenAI takes 4; the 5th is cut here
    assert [ex["prediction"] for ex in say["examples"]] == [f"x echo of s {i} even?" for i in range(5)]
    assert say["metrics"]["exact_match"] == 1.0
    written = "".join(p.read_text() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert "sk-never-written-42" not in written + capsys.readouterr().out


def test_bad_endpoints_are_one_line_and_a_rerun_resumes(task_dirs, tmp_path, capsys):
    data, tasks = task_dirs
    args = ["--tasks", "pick", "--tasks-dir", str(tasks), "--data-dir", str(data), "--out", str(tmp_path / "out")]
    with FakeServer(["ok"] * 4 + ["404"]) as s:  # answers 4 of the 10 choices, then fails
        code = main(["eval", "--model", "local-completions", "--model-args", f"base_url={s.url},model=m,max_retries=0",
                     *args])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.count("\n") == 0 and f"{s.url}/completions: HTTP 404" in err
        answered = [json.dumps(r["body"]["prompt"]) for r in s.seen[:4]]
        first = len(s.seen)
        assert main(["eval", "--model", "local-completions", "--model-args", f"base_url={s.url},model=nope", *args]) == 2
        assert "model 'nope' is not served there (it serves: m)" in capsys.readouterr().err
        s.script = ["ok"]
        assert main(["eval", "--model", "local-completions", "--model-args", f"base_url={s.url},model=m", *args]) == 0
    asked = [json.dumps(r["body"]["prompt"]) for r in s.seen[first:]]
    assert len(asked) == 6 and len(set(asked)) == 6 and not set(asked) & set(answered)  # only the unanswered
    assert json.loads((tmp_path / "out" / "pick" / "results.json").read_text())["num_examples"] == 5


@pytest.mark.parametrize("argv,words", [
    (["--model", "local-completions"], "'model' name the served model"),
    (["--model", "local-completions", "--model-args", "model=m"], "needs base_url="),
    (["--model", "local-completions", "--model-args", "model=m,base_url=ftp://x"], "is not an http(s) URL"),
    (["--model", "local-completions", "--model-args", "model=m,bogus=1"], "unknown key 'bogus'"),
    (["--model", "local-completions", "--model-args", "model=m,num_concurrent=0"], "num_concurrent"),
    (["--model", "openai-chat-completions", "--model-args", "model=m,api_key_env=NO_SUCH_KEY_VAR"], "NO_SUCH_KEY_VAR"),
    (["--model", "local-completions", "--model-args", "model=m,base_url=http://127.0.0.1:9/v1", "--adapter", "x"],
     "--adapter loads a local run"),
    (["--model", "local-completions", "--model-args", "model=m", "--dtype", "bfloat16"], "--dtype loads a local model"),
    (["--model", "smollm2-135m-instruct", "--model-args", "model=m"], "--model-args describes an endpoint model"),
    (["--model", "local-completions", "--model-args", "model=m,base_url=http://127.0.0.1:9/v1"], "cannot reach"),
])
def test_endpoint_options_fail_in_one_line(argv, words, task_dirs, capsys):
    data, tasks = task_dirs
    code = main(["eval", *argv, "--tasks", "pick", "--tasks-dir", str(tasks), "--data-dir", str(data)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and words in err and "\n" not in err


def test_forgetting_on_a_server_that_serves_base_and_adapter(task_dirs, tmp_path):
    data, tasks = task_dirs
    with FakeServer(["ok"], models=("base", "ft")) as s:
        code = main(["forgetting", "--model", "local-completions", "--model-args", f"base_url={s.url},model=base",
                     "--adapter", "ft", "--tasks", "pick", "--tasks-dir", str(tasks), "--data-dir", str(data),
                     "--out", str(tmp_path / "f")])
    assert code == 0
    served = [r["body"]["model"] for r in s.seen]
    assert served == ["base"] * 10 + ["ft"] * 10
    result = json.loads((tmp_path / "f" / "forgetting.json").read_text())
    assert result["tasks"]["pick"]["delta"] == 0.0  # the fake answers both alike
    assert json.loads((tmp_path / "f" / "after" / "pick" / "results.json").read_text())["label"] == "ft"


def test_lm_eval_format_from_the_command(task_dirs, tmp_path):
    from lm_eval.utils import get_results_filenames, get_sample_results_filenames

    from tuneval.evaluate.lm_eval_format import read_lm_eval

    data, tasks = task_dirs
    out = tmp_path / "out"
    with FakeServer(["ok"], models=("org/m",)) as s:
        assert main(["eval", "--model", "local-completions", "--model-args", f"base_url={s.url},model=org/m",
                     "--tasks", "pick,say", "--tasks-dir", str(tasks), "--data-dir", str(data), "--out", str(out),
                     "--lm-eval-format"]) == 0
    files = [str(p) for p in (out / "org__m").iterdir()]
    assert len(get_results_filenames(files)) == 1 and len(get_sample_results_filenames(files)) == 2
    written = json.loads(open(get_results_filenames(files)[0]).read())
    assert written["config"]["model"] == "local-completions" and written["model_name"] == "org/m"
    back = read_lm_eval(out)
    for name in ("pick", "say"):
        ours = json.loads((out / name / "results.json").read_text())
        assert back[name]["metrics"][ours["primary_metric"]] == pytest.approx(ours["metrics"][ours["primary_metric"]])
        assert [ex["id"] for ex in back[name]["examples"]] == [ex["id"] for ex in ours["examples"]]
