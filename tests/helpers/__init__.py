"""What several test modules share, in one place: tiny training settings and MNIST run
settings (runs.py), the small batch-norm network of the algorithm tests (nets.py), and the
Snakemake runner of the pipeline tests (workflow.py)."""
