"""The planner's error."""

from __future__ import annotations


class PlanError(ValueError):
    """Bad planner input (unknown device, a precision the device lacks): one line."""
