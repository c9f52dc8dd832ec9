"""Round trip through the server (issue 31 items 2-3): `tuneval eval` against `tuneval serve` gives what
`tuneval eval` gives in process, for the base and for a served LoRA adapter: the same greedy
predictions and ROUGE, the same log-likelihoods and picks. The server runs in this process
(uvicorn in a thread); the client is the real HTTP one."""

from __future__ import annotations

import json
import socket
import threading
import time
from contextlib import contextmanager

import pytest
import uvicorn

from tuneval import simple_evaluate

MC = ('task: pick\noutput_type: multiple_choice\nvalidation_split: validation\ndata_files: {validation: pick/val.jsonl}\n'
      'doc_to_text: "Dialogue: {{ dialogue[:80] }}\\nIs this about {{ topic }}?\\nAnswer:"\ndoc_to_choice: ["yes", "no"]\n'
      'doc_to_target: 0\nmetric_list: [acc]\n')


@contextmanager
def served(base, adapters: dict):
    from tuneval.models import load_model
    from tuneval.serve.api import ServeSettings, create_app
    from tuneval.serve.bank import AdapterBank

    bank = AdapterBank(load_model(str(base)), base_name="base")
    for name, path in adapters.items():
        bank.load(name, path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(bank, ServeSettings(max_tokens=64)), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(20)


@pytest.fixture
def data(tiny_data_dir):
    (tiny_data_dir / "pick").mkdir()
    rows = (tiny_data_dir / "dialogsum" / "validation.jsonl").read_text()
    (tiny_data_dir / "pick" / "val.jsonl").write_text(rows)
    (tiny_data_dir.parent / "tasks").mkdir()
    (tiny_data_dir.parent / "tasks" / "pick.yaml").write_text(MC)
    return tiny_data_dir


def test_served_and_in_process_evaluation_agree(lively_llama, llama_adapters, data, tmp_path):
    tasks_dir = data.parent / "tasks"
    common = dict(data_dir=str(data), bootstrap_iters=0)
    local = {
        "a": simple_evaluate(str(lively_llama), llama_adapters["lora_a"], task="dialogsum", limit=4,
                             max_new_tokens=12, out=tmp_path / "la", **common),
        "base": simple_evaluate(str(lively_llama), task="dialogsum", limit=4, max_new_tokens=12, out=tmp_path / "lb",
                                **common),
    }
    local_mc = simple_evaluate(str(lively_llama), llama_adapters["lora_a"], tasks="pick", tasks_dir=tasks_dir,
                               out=tmp_path / "lmc", **common)
    with served(lively_llama, {"a": llama_adapters["lora_a"]}) as url:
        remote = {m: simple_evaluate("local-completions", task="dialogsum", limit=4, max_new_tokens=12,
                                     model_args=f"base_url={url},model={m},tokenizer={lively_llama},num_concurrent=3",
                                     out=tmp_path / f"r{m}", **common) for m in ("a", "base")}
        simple_evaluate("local-completions", tasks="pick", tasks_dir=tasks_dir, out=tmp_path / "rmc",
                        model_args=f"base_url={url},model=a,tokenizer={lively_llama}", **common)
    for m in ("a", "base"):
        assert [e["prediction"] for e in remote[m]["examples"]] == [e["prediction"] for e in local[m]["examples"]]
        assert remote[m]["metrics"]["rouge1"] == local[m]["metrics"]["rouge1"]
    assert [e["prediction"] for e in local["a"]["examples"]] != [e["prediction"] for e in local["base"]["examples"]]
    ours = json.loads((tmp_path / "lmc" / "pick" / "results.json").read_text())["examples"]
    theirs = json.loads((tmp_path / "rmc" / "pick" / "results.json").read_text())["examples"]
    assert [e["pred"] for e in theirs] == [e["pred"] for e in ours]
    for a, b in zip(ours, theirs):
        assert b["loglik"] == pytest.approx(a["loglik"], abs=1e-4)
        assert b["is_greedy"] == a["is_greedy"]
    assert local_mc["tasks"]["pick"]["value"] == json.loads((tmp_path / "rmc" / "summary.json").read_text())[
        "tasks"]["pick"]["value"]
