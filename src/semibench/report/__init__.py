"""Turn per-run ``metrics.json``/``curve.csv`` files into tables, figures and one HTML report.

Kept separate from training so that reports can be rebuilt from results alone, without torch.
"""
