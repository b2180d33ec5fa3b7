#!/usr/bin/env python3
"""Independent WebSocket client for wsgate's end-to-end tests (Python `websockets`).

Usage: ws_echo_push.py URL NAME [--ca CA.pem] [--timeout SECONDS]

Connects to URL (ws:// or wss://; with --ca, that file is the only trusted root),
sends one text message and waits until both its echo from the demo backend
(`got your message: <text> [NAME]`) and a pushed message naming NAME arrive.
Prints one JSON line with what it saw; exits 0 on success, 1 otherwise.
"""
import argparse
import json
import ssl
import sys
import time

from websockets.sync.client import connect

ECHO_PREFIX = "got your message: "


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("name")
    ap.add_argument("--ca")
    ap.add_argument("--timeout", type=float, default=15.0)
    args = ap.parse_args()

    ctx = None
    if args.url.startswith("wss://"):
        ctx = ssl.create_default_context(cafile=args.ca)

    text = "hello from python websockets"
    want_echo = f"{ECHO_PREFIX}{text} [{args.name}]"
    seen = {"echo": None, "push": None, "other": []}
    deadline = time.monotonic() + args.timeout
    try:
        with connect(args.url, ssl=ctx, open_timeout=args.timeout) as ws:
            ws.send(text)
            while seen["echo"] is None or seen["push"] is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                msg = ws.recv(timeout=left)
                if not isinstance(msg, str):
                    seen["other"].append(repr(msg))
                elif msg == want_echo:
                    seen["echo"] = msg
                elif not msg.startswith(ECHO_PREFIX) and args.name in msg:
                    seen["push"] = msg
                else:
                    seen["other"].append(msg)
    except Exception as e:  # report, do not hide: the test prints this line
        seen["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(seen))
    ok = seen["echo"] is not None and seen["push"] is not None and "error" not in seen
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
