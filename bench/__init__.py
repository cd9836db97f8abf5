"""Boothby's benchmark harness: `python bench/run.py --help` lists its options."""
