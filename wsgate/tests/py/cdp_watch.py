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
import json
import sys
import time

from cdp import Page


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("url")
    ap.add_argument("selector")
    ap.add_argument("--timeout", type=float, default=20.0)
    args = ap.parse_args()

    page = Page(args.port, args.timeout)
    text = f"(document.querySelector({json.dumps(args.selector)}) || {{}}).textContent"
    page.open(args.url, f"{text} !== undefined")
    page.evaluate("window.wsgateTestMarker = 42")
    before = page.evaluate(text)
    loads = page.navigations
    print(json.dumps({"before": before}), flush=True)
    sys.stdin.readline()

    page.end = time.time() + args.timeout
    after = before
    while after == before and time.time() < page.end:
        time.sleep(0.2)
        after = page.evaluate(text)
    kept = page.evaluate("window.wsgateTestMarker") == 42
    print(
        json.dumps({"after": after, "marker_kept": kept, "navigations": page.navigations - loads}),
        flush=True,
    )
    return 0 if after != before and kept else 1


if __name__ == "__main__":
    sys.exit(main())
