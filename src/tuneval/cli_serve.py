"""The commands that use a trained result: merge, export, serve, chat (registered by cli.COMMANDS).

Thin, as every command: each parses its flags, calls its api.py function, and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from tuneval import api
from tuneval.cli_options import (attn_implementation_option, console, dtype_option, err, model_args_from,
                                 precision_option, quiet_libraries, revision_option, trust_remote_code_option)


def merge(
    run: Path = typer.Argument(..., help="Run directory (or its adapter/ directory) to merge."),
    out: Path = typer.Option(..., "--out", help="Where the merged model (safetensors) goes."),
    model: Optional[str] = typer.Option(None, "--model", help="Base model (default: the run's recipe)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
    precision: str = precision_option(),
    dtype: Optional[str] = dtype_option(),
    revision: Optional[str] = revision_option(),
    trust_remote_code: bool = trust_remote_code_option(),
    attn_implementation: Optional[str] = attn_implementation_option(),
):
    """Fold an adapter into its base: a full model that plain transformers loads."""
    margs = model_args_from(dtype, revision, trust_remote_code, attn_implementation)
    quiet_libraries()
    info = api.merge(run, out, model=model, overwrite=overwrite, precision=precision, model_args=margs)
    console.print(f"merged {info['peft_type']} adapter into {info['base']} ({info['params']:,d} params) ({info['dtype']}) -> {info['out']}")


def export(
    run: Path = typer.Argument(..., help="Run directory (or its adapter/ directory) to export."),
    out: Path = typer.Option(..., "--out", help="Where the model (safetensors, tokenizer, README.md card) goes."),
    max_shard_size: str = typer.Option("2GB", "--max-shard-size", help="Largest safetensors file (e.g. 2GB, 500MB)."),
    adapter_only: bool = typer.Option(False, "--adapter-only", help="The PEFT adapter alone, not merged into its base."),
    push_to_hub: Optional[str] = typer.Option(None, "--push-to-hub", help="Then upload it to this Hub repo (org/name)."),
    private: bool = typer.Option(False, "--private", help="With --push-to-hub: create the repo private."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
    format: str = typer.Option("safetensors", "--format", help="safetensors (transformers, PEFT) or gguf (llama.cpp, "
                                                                "Ollama)."),
    outtype: list[str] = typer.Option([], "--outtype", help="With --format gguf: f32, f16, bf16 or q8_0 (repeatable; "
                                                             "default f16), as llama.cpp's converter names them."),
    llama_cpp: Optional[Path] = typer.Option(None, "--llama-cpp", help="With --format gguf: a llama.cpp checkout whose "
                                                                       "converter to use (default: the installed one)."),
    precision: str = precision_option(),
    dtype: Optional[str] = dtype_option(),
    revision: Optional[str] = revision_option(),
    trust_remote_code: bool = trust_remote_code_option(),
    attn_implementation: Optional[str] = attn_implementation_option(),
):
    """Export a run for others: merged (or adapter-only) safetensors or GGUF with a model card; optionally push it."""
    margs = model_args_from(dtype, revision, trust_remote_code, attn_implementation)
    quiet_libraries()
    info = api.export(run, out, max_shard_size=max_shard_size, adapter_only=adapter_only, push_to_hub=push_to_hub,
                      private=private, overwrite=overwrite, precision=precision, model_args=margs, format=format,
                      outtypes=outtype or None, llama_cpp=llama_cpp)
    pushed = f"; pushed to {info['url']}" if info.get("url") else ""
    files = f" ({', '.join(info['gguf'])})" if info.get("gguf") else ""
    console.print(f"exported {info['kind']} {info['method']} model ({info['params']:,d} params, {info['dtype']}) "
                  f"-> {info['out']}{files}{pushed}", highlight=False)


def serve(
    model: str = typer.Option(api.DEFAULT_MODEL, "--model", help="Base model: embedded name, directory or hub id."),
    adapter: list[str] = typer.Option([], "--adapter", help="NAME=RUN: an adapter to load at start (repeatable)."),
    adapters_root: Optional[Path] = typer.Option(None, "--adapters-root",
                                                 help="Directory POST /v1/adapters may load from (off if unset)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (loopback unless told otherwise)."),
    port: int = typer.Option(8000, "--port"),
    max_batch_size: int = typer.Option(16, "--max-batch-size", help="Rows per batched generate call."),
    batch_window_ms: float = typer.Option(5.0, "--batch-window-ms", help="Wait this long to gather a batch."),
    max_prompt_tokens: int = typer.Option(1024, "--max-prompt-tokens"),
    max_tokens: int = typer.Option(256, "--max-tokens", help="Largest max_tokens a request may ask for."),
    max_queue: int = typer.Option(256, "--max-queue", help="Rows waiting for a batch; beyond it: 503 + Retry-After."),
    request_timeout: float = typer.Option(300.0, "--request-timeout", help="Seconds a request may take; then 504."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="TUNEVAL_API_KEY", show_envvar=True,
                                          help="Require 'Authorization: Bearer KEY' (all but /health); "
                                               "needed off loopback."),
    log_level: str = typer.Option("info", "--log-level", help="critical, error, warning, info, debug or trace."),
    precision: str = precision_option(),
    dtype: Optional[str] = dtype_option(),
    revision: Optional[str] = revision_option(),
    trust_remote_code: bool = trust_remote_code_option(),
    attn_implementation: Optional[str] = attn_implementation_option(),
):
    """OpenAI-compatible server: one base, many adapters, mixed-adapter batches."""
    margs = model_args_from(dtype, revision, trust_remote_code, attn_implementation)
    quiet_libraries()

    def ready(app, host, port):
        names = ", ".join(a.name for a in app.state.bank.catalogue()) or "none"
        auth = "; API key required" if api_key is not None else ""
        console.print(f"serving {model} (adapters: {names}{auth}) on http://{host}:{port}/v1")

    api.start_server(model, adapter, adapters_root=adapters_root, host=host, port=port, max_batch_size=max_batch_size,
                     batch_window_ms=batch_window_ms, max_prompt_tokens=max_prompt_tokens, max_tokens=max_tokens,
                     max_queue=max_queue, request_timeout=request_timeout, api_key=api_key, log_level=log_level,
                     precision=precision, model_args=margs, on_ready=ready,
                     on_notice=lambda text: err.print(f"[yellow]warning:[/yellow] {text}", soft_wrap=True))


def chat(
    model: Optional[str] = typer.Option(None, "--model", help="Embedded name, directory or hub id (default: the "
                                        "--adapter run's base, else smollm2-135m-instruct)."),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="Run directory (or adapter directory) to talk to."),
    system: Optional[str] = typer.Option(None, "--system", help="System message that opens the conversation."),
    once: Optional[str] = typer.Option(None, "--once", help="Answer this one prompt on stdout, then exit (for scripts)."),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", help="Longest reply, in tokens."),
    temperature: float = typer.Option(0.0, "--temperature", help="0: greedy (default); above 0: sample."),
    top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling mass (with --temperature above 0)."),
    precision: str = precision_option(),
    dtype: Optional[str] = dtype_option(),
    revision: Optional[str] = revision_option(),
    trust_remote_code: bool = trust_remote_code_option(),
    attn_implementation: Optional[str] = attn_implementation_option(),
):
    """Chat with a model (and a trained adapter) in the terminal, tokens streamed; /reset, /exit, Ctrl-D."""
    from tuneval.serve.chat import read_terminal, run_chat, run_once, write_stdout  # the terminal's side

    margs = model_args_from(dtype, revision, trust_remote_code, attn_implementation)
    quiet_libraries()
    session = api.chat(model, adapter, system=system, max_new_tokens=max_new_tokens, temperature=temperature,
                       top_p=top_p, precision=precision, model_args=margs,
                       on_notice=lambda text: err.print(text, highlight=False, markup=False, soft_wrap=True))
    err.print(session.header(), highlight=False, markup=False, soft_wrap=True)  # stderr: --once's stdout is the answer
    code = run_once(session, once, write_stdout) if once is not None else run_chat(session, read_terminal, write_stdout)
    if code:
        raise typer.Exit(code)
