"""Test-session settings.

One intra-op thread: the tests use tiny models, where a second thread buys nothing and costs
a lot whenever the other core is busy (spinning OpenMP workers made some CPU tests 10-30x
slower on a loaded 2-core machine). Set before torch is imported by any test module.
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
