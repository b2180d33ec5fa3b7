#!/usr/bin/env python3
"""Loads a page in a running Chromium as a 390-px-wide phone, over the DevTools protocol.

Usage: cdp_phone.py DEVTOOLS_PORT URL PNG [--timeout SECONDS]

Emulates a 390x844 mobile viewport, opens URL, writes a PNG screenshot to
PNG and prints one JSON line: the page's scroll width and the viewport
width (the page must not scroll sideways), and per table whether it sits
in a horizontally scrolling container and overflows it.
"""
import argparse
import base64
import json
import sys

from cdp import Page

MEASURE = """(() => {
  const wraps = [...document.querySelectorAll("table")].map(t => {
    const w = t.parentElement;
    return {scrolls: getComputedStyle(w).overflowX === "auto", overflows: w.scrollWidth > w.clientWidth};
  });
  return {scroll_width: document.documentElement.scrollWidth, viewport: window.innerWidth, tables: wraps};
})()"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("url")
    ap.add_argument("png")
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()

    page = Page(args.port, args.timeout)
    page.call("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=1, mobile=True)
    page.open(args.url, "document.querySelector('table') !== null")
    measured = page.evaluate(MEASURE)
    shot = page.call("Page.captureScreenshot", format="png")
    with open(args.png, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    print(json.dumps(measured), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
