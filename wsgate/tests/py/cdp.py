"""A minimal Chrome DevTools protocol client for the browser tests: the
first page of a Chromium started with --remote-debugging-port, driven
with `websockets`' sync client (no browser-automation library)."""
import itertools
import json
import time
import urllib.request

from websockets.sync.client import connect


class Page:
    """The first page target of the Chromium on `port`."""

    def __init__(self, port: int, timeout: float):
        self.end = time.time() + timeout
        self.navigations = 0
        self._ids = itertools.count(1)
        target = None
        while target is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as r:
                    target = next((t for t in json.load(r) if t.get("type") == "page"), None)
            except OSError:
                pass
            if target is None:
                if time.time() > self.end:
                    raise TimeoutError("no page target")
                time.sleep(0.1)
        self.ws = connect(target["webSocketDebuggerUrl"], max_size=None)
        self.call("Page.enable")

    def call(self, method: str, **params):
        """Sends one command and returns its result, counting the
        navigations reported meanwhile."""
        my_id = next(self._ids)
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, self.end - time.time())))
            if msg.get("method") == "Page.frameNavigated":
                self.navigations += 1
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def evaluate(self, expr: str):
        res = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        return res.get("result", {}).get("value")

    def open(self, url: str, ready_expr: str = "true"):
        """Navigates to `url` and waits until it loaded and `ready_expr`
        is truthy."""
        self.call("Page.navigate", url=url)
        while self.evaluate("document.readyState") != "complete" or not self.evaluate(ready_expr):
            if time.time() > self.end:
                raise TimeoutError(f"{url} did not load")
            time.sleep(0.1)
