"""The planner's error."""

from __future__ import annotations

from semibench.errors import SemiBenchError


class PlanError(SemiBenchError, ValueError):
    """Bad planner input (unknown device, a precision the device lacks): one line."""
