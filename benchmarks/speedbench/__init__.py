"""The pieces of ``benchmarks/speed.py`` (the CLI stays there): the settings, the two sides
(SemiBench's trainer and semilearn 0.3.2), the measuring rounds and their statistics, the
calibration rows for ``semibench plan``, and GPU packing."""
