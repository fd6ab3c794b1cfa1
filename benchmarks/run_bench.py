"""Run `heimdall bench` and append its JSON, with a timestamp, to benchmarks/results.jsonl.

Usage: .venv/bin/python benchmarks/run_bench.py [--quick]
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from heimdall.pipelines.bench import run_bench

if __name__ == "__main__":
    result = run_bench(quick="--quick" in sys.argv)
    result["measured_at"] = datetime.now(timezone.utc).isoformat()
    out = Path(__file__).with_name("results.jsonl")
    with out.open("a") as handle:
        handle.write(json.dumps(result) + "\n")
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
