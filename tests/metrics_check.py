#!/usr/bin/env python3
"""Parses a /metrics page with Prometheus' own Python client, as a scraper
would, and prints what it read as JSON for herald's tests.

    python3 tests/metrics_check.py FILE [--openmetrics]

Without --openmetrics the page is read by the Prometheus text format parser
(`prometheus_client.parser.text_string_to_metric_families`); with it, by the
strict OpenMetrics parser. Prints a JSON list of families: name, type, help
and samples ([name, labels, value]). A page either parser rejects is an
error (exit 1, the parser's message on stderr). Exit 3 when
prometheus_client is not installed (pip install prometheus_client).
"""

import json
import math
import sys

try:
    from prometheus_client.openmetrics.parser import (
        text_string_to_metric_families as openmetrics_families,
    )
    from prometheus_client.parser import text_string_to_metric_families as text_families
except ImportError as e:
    print(f"prometheus_client is not installed: {e}", file=sys.stderr)
    sys.exit(3)


def number(v):
    # JSON has no infinities or NaN.
    return str(v) if math.isinf(v) or math.isnan(v) else v


def main():
    path = sys.argv[1]
    parse = openmetrics_families if "--openmetrics" in sys.argv[2:] else text_families
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        families = [
            {
                "name": fam.name,
                "type": fam.type,
                "help": fam.documentation,
                "samples": [[s.name, s.labels, number(s.value)] for s in fam.samples],
            }
            for fam in parse(text)
        ]
    except Exception as e:  # the parsers raise ValueError and friends
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    json.dump(families, sys.stdout)


if __name__ == "__main__":
    main()
