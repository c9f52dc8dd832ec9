"""Start the server: load the base once, preload adapters, run uvicorn on loopback by default.

Adapters named on the command line (`--adapter NAME=RUN`) are trusted like the model path
(the operator typed them) but still load from safetensors only. Adapters loaded over HTTP
must live under `--adapters-root`. Binding to anything but loopback needs an API key
(`--api-key` or TUNEVAL_API_KEY): whoever can reach the port could otherwise run the model
and load and unload adapters from the root. On loopback the key stays optional.

Every option is checked (`check_options`) before the model loads, so a typo costs a
one-line error at once, not a traceback after a minute of loading.
"""

from __future__ import annotations

import ipaddress
import math
from pathlib import Path

from tuneval.errors import TunevalError
from tuneval.serve.api import ServeSettings, create_app
from tuneval.serve.bank import AdapterBank


def parse_adapter_specs(specs: list[str]) -> dict[str, str]:
    adapters: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise TunevalError(f"--adapter {spec!r}: expected NAME=RUN_OR_ADAPTER_DIR")
        if name in adapters:
            raise TunevalError(f"--adapter {spec!r}: the name '{name}' is given twice")
        adapters[name.strip()] = path.strip()
    return adapters


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")  # uvicorn's


def check_options(host: str, port: int, log_level: str, settings: ServeSettings) -> str:
    """Refuse bad options with a TunevalError; return the log level uvicorn expects."""
    level = log_level.lower()
    if level not in LOG_LEVELS:
        raise TunevalError(f"--log-level {log_level!r}: use one of {', '.join(LOG_LEVELS)}")
    if not 0 <= port <= 65535:
        raise TunevalError(f"--port {port}: must be 0-65535")
    s = settings
    if min(s.max_batch_size, s.max_prompt_tokens, s.max_tokens, s.max_queue) < 1 or s.batch_window_ms < 0:
        raise TunevalError("--max-batch-size, --max-prompt-tokens, --max-tokens and --max-queue must be >= 1, "
                           "--batch-window-ms >= 0")
    if not (s.request_timeout > 0 and math.isfinite(s.request_timeout)):
        raise TunevalError(f"--request-timeout {s.request_timeout}: must be > 0 seconds (and finite)")
    from tuneval.precision import check_precision

    s.precision = check_precision(s.precision, "--precision")
    key = s.api_key
    if key is not None and (not key or any(not ("!" <= c <= "~") for c in key)):
        raise TunevalError("--api-key / TUNEVAL_API_KEY: must be non-empty printable ASCII without spaces")
    if key is None and not is_loopback(host):
        what = "run the model and load adapters from --adapters-root" if s.adapters_root else "run the model"
        raise TunevalError(f"--host {host} is not a loopback address: anyone who can reach the port could {what}; "
                           "set --api-key (or TUNEVAL_API_KEY), or bind to 127.0.0.1")
    return level


def build_app(model: str, adapters: dict[str, str] | None = None, settings: ServeSettings | None = None):
    from tuneval.models import load_model

    settings = settings or ServeSettings()
    if settings.adapters_root is not None:
        root = Path(settings.adapters_root)
        if not root.is_dir():
            raise TunevalError(f"--adapters-root {root}: no such directory")
        settings.adapters_root = root.resolve()
    bank = AdapterBank(load_model(model, precision=settings.precision, args=settings.model_args), base_name=model)
    for name, path in (adapters or {}).items():
        bank.load(name, path)
    return create_app(bank, settings)


def serve(model: str, adapters: dict[str, str] | None = None, host: str = "127.0.0.1", port: int = 8000,
          settings: ServeSettings | None = None, log_level: str = "info", on_ready=None) -> None:
    import uvicorn

    settings = settings or ServeSettings()
    log_level = check_options(host, port, log_level, settings)
    app = build_app(model, adapters, settings)
    if on_ready:
        on_ready(app, host, port)
    # On SIGTERM, give requests in flight 5 s; then their rows are cancelled at the next token.
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug",
                timeout_graceful_shutdown=5)
