"""`make bench`: every benchmark in turn, each printing its own figures.

python -m bench            # sync 10k+100k per tracker, mapping 100k×1k, signals 1M
python -m bench --quick    # smaller sizes, for a smoke run
"""

from __future__ import annotations

import subprocess
import sys


def main() -> None:
    quick = "--quick" in sys.argv
    runs = [
        ["bench.bench_sync", "--sizes", "2000" if quick else "10000,100000"],
        ["bench.bench_mapping"],
        ["bench.bench_signals"],
    ]
    for module, *args in runs:
        print(f"\n== {module} {' '.join(args)}", flush=True)
        subprocess.run([sys.executable, "-m", module, *args], check=True)


if __name__ == "__main__":
    main()
