"""``./run bench [ARGS]``: the benchmark harness of issue 6 (see ``bench/harness.py``).

./run bench                      # 10k, 100k, 1M rows; 3 repetitions; every contender
./run bench --rows 1M --repeat 5 --contenders core,dlt
./run bench --smoke              # 20k rows, one repetition (CI)
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import main

if __name__ == "__main__":
    sys.exit(main())
