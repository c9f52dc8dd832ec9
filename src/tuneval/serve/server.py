"""Start the server: load the base once, preload adapters, run uvicorn on loopback by default.

Adapters named on the command line (`--adapter NAME=RUN`) are trusted like the model path
(the operator typed them) but still load from safetensors only. Adapters loaded over HTTP
must live under `--adapters-root`. Binding to anything but loopback is allowed but loud:
whoever can reach the port can run the model and load adapters from the root.
"""

from __future__ import annotations

import ipaddress
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


def build_app(model: str, adapters: dict[str, str] | None = None, settings: ServeSettings | None = None):
    from tuneval.models import load_model

    settings = settings or ServeSettings()
    if settings.adapters_root is not None:
        root = Path(settings.adapters_root)
        if not root.is_dir():
            raise TunevalError(f"--adapters-root {root}: no such directory")
        settings.adapters_root = root.resolve()
    bank = AdapterBank(load_model(model), base_name=model)
    for name, path in (adapters or {}).items():
        bank.load(name, path)
    return create_app(bank, settings)


def serve(model: str, adapters: dict[str, str] | None = None, host: str = "127.0.0.1", port: int = 8000,
          settings: ServeSettings | None = None, log_level: str = "info", on_ready=None) -> None:
    import uvicorn

    if not 0 <= port <= 65535:
        raise TunevalError(f"--port {port}: must be 0-65535")
    app = build_app(model, adapters, settings)
    if on_ready:
        on_ready(app, host, port)
    # On SIGTERM, give requests in flight 5 s; then their rows are cancelled at the next token.
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug",
                timeout_graceful_shutdown=5)
