"""Parses Prometheus text exposition (stdin) with prometheus_client's own
parser and prints one `name{labels} value` line per sample, labels sorted,
so a test can check wsgate's /metrics with a parser that shares no code
with it. Exits 1 when the text does not parse."""
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    text = sys.stdin.read()
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                print(f"{s.name}{{{labels}}} {s.value!r}")
    except Exception as e:  # noqa: BLE001 - any parse failure is the answer
        print(f"parse error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
