"""Open a report in headless Chromium and report what a person would hit: errors, requests, looks.

Drives the browser over the Chrome DevTools protocol on a pipe (`--remote-debugging-pipe`:
JSON messages, NUL-terminated, on file descriptors 3 and 4), so it needs no driver, no port
and no Python package beyond the standard library. Used by the browser test
(tests/report/test_browser.py) and the benchmarks (bench/report_load.py, bench/report_screenshot.py),
so it lives with the tests, not in the installed package; the benchmarks put the repository root on
sys.path and import it as `tests.report.browser`.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    env = os.environ.get("TUNEVAL_CHROMIUM")
    if env:
        return env if shutil.which(env) or Path(env).is_file() else None
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


class BrowserError(RuntimeError):
    pass


class Chromium:
    """One headless browser, one page. Collects console errors, exceptions and every request."""

    def __init__(self, executable: str | None = None, width: int = 1280, height: int = 900, timeout: float = 60.0):
        exe = executable or find_chromium()
        if exe is None:
            raise BrowserError("no Chromium found (apt-get install chromium)")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="tuneval-chromium-")
        to_child, self._w = os.pipe()
        self._r, from_child = os.pipe()

        def wire():
            """In the child: commands on fd 3, replies on fd 4. Copied high first, so neither end is
            already 3 or 4, where dup2 would do nothing and leave the close-on-exec flag on."""
            a, b = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child, from_child))
            os.dup2(a, 3)
            os.dup2(b, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        args = [exe, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", "--mute-audio", f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}", "about:blank"]
        self._log = open(Path(self.profile) / "stderr.log", "wb")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(args, preexec_fn=wire, close_fds=False, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self._log)
        os.close(to_child)
        os.close(from_child)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"}, browser=True)["targetId"]
            self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                     browser=True)["sessionId"]
            for domain in ("Runtime", "Page", "Network", "Log"):
                self.call(f"{domain}.enable")
            self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                             "mobile": False})
        except (OSError, BrowserError) as e:
            log = (Path(self.profile) / "stderr.log").read_text(errors="replace").strip().splitlines()[-5:]
            self.close()
            raise BrowserError(f"Chromium did not start ({e}): " + " | ".join(log)) from None
        except BaseException:
            self.close()
            raise

    # -- protocol --------------------------------------------------------------------------------
    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise BrowserError("Chromium did not answer in time")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise BrowserError("Chromium closed the debugging pipe")
            self._buf += chunk
        msg, _, self._buf = self._buf.partition(b"\0")
        return json.loads(msg)

    def call(self, method: str, params: dict | None = None, browser: bool = False) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not browser:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_for(self, event: str, timeout: float | None = None) -> dict[str, Any]:
        """The next `event` (one already received counts); it is taken off the list, so a second call waits anew."""
        deadline = time.monotonic() + (timeout or self.timeout)
        for i, e in enumerate(self.events):
            if e["method"] == event:
                return self.events.pop(i)
        while True:
            msg = self._read(deadline)
            if "method" in msg:
                if msg["method"] == event:
                    return msg
                self.events.append(msg)

    # -- what the tests and the benchmark ask -----------------------------------------------------
    def open(self, path: str | Path) -> float:
        """Load a local file and wait until it has loaded; seconds from navigation start to the end of
        the load event, as the page's own navigation timing says."""
        uri = Path(path).resolve().as_uri()
        self.events.clear()
        self.call("Page.navigate", {"url": uri})
        while True:  # a load event of the page before (about:blank) may still be on its way: check whose it is
            self.wait_for("Page.loadEventFired")
            if self.evaluate("location.href + ' ' + document.readyState") == f"{uri} complete":
                break
        return self.evaluate("new Promise(done => { const f = () => {"
                             " const n = performance.getEntriesByType('navigation')[0];"
                             " if (n && n.loadEventEnd > 0) done(n.loadEventEnd / 1000); else setTimeout(f, 5); }; f(); })")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"script failed: {result['exceptionDetails'].get('text')} "
                               f"{result['exceptionDetails'].get('exception', {}).get('description', '')}")
        return result["result"].get("value")

    def problems(self) -> dict[str, list[str]]:
        """Console errors and warnings, uncaught exceptions, log errors, failed and non-local requests."""
        out: dict[str, list[str]] = {"console": [], "exceptions": [], "log": [], "failed": [], "requests": []}
        for e in self.events:
            p, m = e.get("params", {}), e["method"]
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
                out["console"].append(" ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                out["exceptions"].append(p["exceptionDetails"].get("exception", {}).get("description")
                                         or p["exceptionDetails"].get("text", ""))
            elif m == "Log.entryAdded" and p["entry"].get("level") in ("error", "warning"):
                out["log"].append(f"{p['entry'].get('source')}: {p['entry'].get('text')}")
            elif m == "Network.loadingFailed":
                out["failed"].append(f"{p.get('errorText')} ({p.get('type')})")
            elif m == "Network.requestWillBeSent":
                url = p["request"]["url"]
                if not url.startswith(("file:", "data:", "about:")):
                    out["requests"].append(url)
        return out

    def screenshot(self, path: str | Path, top: float = 0, height: float | None = None) -> Path:
        """A PNG of the page from `top` (CSS px), `height` tall (default: to the end, at most 16,000 px)."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        height = min(height or size["height"] - top, size["height"] - top, 16000)
        data = self.call("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": top, "width": size["width"], "height": height, "scale": 1}})["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.call("Browser.close", browser=True)
        except (BrowserError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
