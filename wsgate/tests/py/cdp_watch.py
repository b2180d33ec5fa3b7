#!/usr/bin/env python3
"""Watches one element of a page in a running Chromium, over the DevTools protocol.

Usage: cdp_watch.py DEVTOOLS_PORT URL SELECTOR [--timeout SECONDS]

Opens URL in the Chromium listening on DEVTOOLS_PORT (started with
--remote-debugging-port), waits for the page to load, sets a JavaScript
global (a page reload would lose it), and prints one JSON line
{"before": <text of SELECTOR>}. It then waits for a line on stdin (the
caller changed something) and polls the element until its text differs,
printing {"after": <text>, "marker_kept": <bool>, "navigations": <n>}.
Exits 0 when the text changed with the global kept, 1 otherwise.
"""
import argparse
import itertools
import json
import sys
import time
import urllib.request

from websockets.sync.client import connect


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("url")
    ap.add_argument("selector")
    ap.add_argument("--timeout", type=float, default=20.0)
    args = ap.parse_args()

    end = time.time() + args.timeout
    page = None
    while page is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{args.port}/json/list") as r:
                targets = json.load(r)
            page = next((t for t in targets if t.get("type") == "page"), None)
        except OSError:
            pass
        if page is None:
            if time.time() > end:
                print(json.dumps({"error": "no page target"}), flush=True)
                return 1
            time.sleep(0.1)

    ids = itertools.count(1)
    navigations = 0
    with connect(page["webSocketDebuggerUrl"], max_size=None) as ws:

        def call(method, **params):
            nonlocal navigations
            my_id = next(ids)
            ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
            while True:
                msg = json.loads(ws.recv(timeout=max(0.1, end - time.time())))
                if msg.get("method") == "Page.frameNavigated":
                    navigations += 1
                if msg.get("id") == my_id:
                    return msg

        def evaluate(expr):
            res = call("Runtime.evaluate", expression=expr, returnByValue=True)
            return res.get("result", {}).get("result", {}).get("value")

        call("Page.enable")
        call("Page.navigate", url=args.url)
        sel = json.dumps(args.selector)
        text = f"(document.querySelector({sel}) || {{}}).textContent"
        while evaluate("document.readyState") != "complete" or evaluate(text) is None:
            if time.time() > end:
                print(json.dumps({"error": "page not loaded"}), flush=True)
                return 1
            time.sleep(0.1)
        evaluate("window.wsgateTestMarker = 42")
        before = evaluate(text)
        loads = navigations
        print(json.dumps({"before": before}), flush=True)
        sys.stdin.readline()

        end = time.time() + args.timeout
        after = before
        while after == before and time.time() < end:
            time.sleep(0.2)
            after = evaluate(text)
        kept = evaluate("window.wsgateTestMarker") == 42
        print(
            json.dumps(
                {"after": after, "marker_kept": kept, "navigations": navigations - loads}
            ),
            flush=True,
        )
        return 0 if after != before and kept else 1


if __name__ == "__main__":
    sys.exit(main())
