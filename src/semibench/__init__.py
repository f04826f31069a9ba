"""SemiBench: a unified, reproducible semi-supervised learning benchmark."""

__version__ = "0.1.0"
