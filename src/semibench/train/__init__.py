"""Training: the loop, optimiser and schedule, EMA, evaluation and checkpoints."""
