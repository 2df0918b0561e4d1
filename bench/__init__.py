"""Benchmark harness: Downstream against its peers and the machine's ceilings (issue 6).

``./run bench`` (= ``python bench/run.py``) starts the Dune emulator with a synthetic result,
runs every contender in a fresh subprocess into a fresh database, and prints one markdown
table of ratios; raw figures go to ``bench/results/``. See ``harness.py``.
"""
