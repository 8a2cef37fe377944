"""Open a local HTML file in headless Chromium and report what the browser saw (stdlib only).

Drives the Chrome DevTools Protocol over `--remote-debugging-pipe` (NUL-separated JSON on file
descriptors 3 and 4), so no websocket client or port is needed. Collected: console errors and
assertions, uncaught exceptions, browser log errors (CSP violations, failed loads), every network
request, a few DOM facts and a full-page PNG screenshot.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--hide-scrollbars", "--remote-debugging-pipe",
]
_DOM_FACTS = """JSON.stringify({
  title: document.title,
  svgs: Array.from(document.querySelectorAll('svg')).map(s => {
    const r = s.getBoundingClientRect(); return [Math.round(r.width), Math.round(r.height)]; }),
  images: document.querySelectorAll('img, image, picture, video, canvas').length,
  scripts: document.querySelectorAll('script').length,
  text: document.body ? document.body.innerText : ''
})"""


@dataclass
class PageVisit:
    """What happened while the page loaded."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dom: dict = field(default_factory=dict)
    screenshot: bytes = b""


class _Pipe:
    """CDP over a pair of pipes: send commands, wait for replies, keep every event."""

    def __init__(self, write_fd: int, read_fd: int):
        self._write, self._read = write_fd, read_fd
        self._inbox: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        self._next = 0
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        buffer = b""
        while chunk := os.read(self._read, 1 << 16):
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                self._inbox.put(json.loads(raw))
        self._inbox.put(None)

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30) -> dict:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._get(deadline, method)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._get(deadline, method)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                event = self._inbox.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                return
            if event is not None:
                self.events.append(event)

    def _get(self, deadline: float, waiting_for: str) -> dict:
        try:
            item = self._inbox.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(f"Chromium did not answer {waiting_for} in time") from None
        if item is None:
            raise RuntimeError(f"Chromium closed the pipe while waiting for {waiting_for}")
        return item


def _errors(events: list[dict]) -> list[str]:
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            found.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            found.append("exception: " + details.get("exception", {}).get(
                "description", details.get("text", "")))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            found.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}")
    return found


def visit(page: Path | str, width: int = 1200, settle_s: float = 0.5,
          wait_for_text: str | None = None, timeout_s: float = 60,
          wait_for_lines: tuple[str, ...] = ()) -> PageVisit:
    """Load `page` (a file, or a URL) in a fresh headless Chromium and return errors, requests,
    DOM facts and a PNG. `wait_for_text`: wait (up to `timeout_s`) until the page's text holds
    it, for pages that render after their own requests (a single-page app); `wait_for_lines`:
    also until each of these is a whole line of it (a table that fills in after its header)."""
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()
    # The browser reads commands on fd 3 and writes replies on fd 4: copy the child's ends above
    # 10 so the shell's `3<&N 4>&M` cannot clobber one with the other, then exec Chromium.
    child_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
    child_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
    for fd in (to_browser_r, from_browser_w):
        os.close(fd)
    command = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"]
    log = open(Path(profile) / "chromium.log", "wb")  # closed in the finally below
    process = subprocess.Popen(
        ["/bin/bash", "-c", f'exec "$0" "$@" 3<&{child_r} 4>&{child_w}', *command],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
        pass_fds=(child_r, child_w),
    )
    os.close(child_r)
    os.close(child_w)
    pipe = _Pipe(to_browser_w, from_browser_r)
    try:
        target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.call("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            pipe.call(f"{domain}.enable", session=session)
        pipe.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
                  session=session)
        url = page if isinstance(page, str) else page.resolve().as_uri()
        pipe.call("Page.navigate", {"url": url}, session=session)
        pipe.wait_event("Page.loadEventFired", timeout=timeout_s)
        pipe.drain(settle_s)
        deadline = time.monotonic() + timeout_s
        while (wait_for_text is not None or wait_for_lines) and time.monotonic() < deadline:
            text = str(pipe.call("Runtime.evaluate", {"expression": "document.body.innerText",
                                                      "returnByValue": True},
                                 session=session)["result"].get("value", ""))
            lines = set(text.splitlines())
            if (wait_for_text is None or wait_for_text in text) and all(
                    line in lines for line in wait_for_lines):
                break
            pipe.drain(0.5)
        facts = pipe.call("Runtime.evaluate", {"expression": _DOM_FACTS, "returnByValue": True},
                          session=session)["result"]["value"]
        size = pipe.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
        shot = pipe.call("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": size["height"], "scale": 1},
        }, session=session)
        pipe.drain(0.1)
        requests = [e["params"]["request"]["url"] for e in pipe.events
                    if e.get("method") == "Network.requestWillBeSent"]
        return PageVisit(_errors(pipe.events), requests, json.loads(facts),
                         base64.b64decode(shot["data"]))
    except (RuntimeError, TimeoutError) as exc:
        tail = (Path(profile) / "chromium.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{exc}\n--- chromium stderr (tail) ---\n{tail}") from exc
    finally:
        try:
            pipe.call("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        os.close(to_browser_w)
        log.close()
        shutil.rmtree(profile, ignore_errors=True)
