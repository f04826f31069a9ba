"""The suite relies on xdist's loadgroup to run each ``xdist_group`` (the shared pipeline, the
SLURM cluster) on one worker. pytest 9 with xdist 3.8 drops the group silently: each worker
then runs its own copy of the shared pipeline. This test fails if grouping stops working."""

import pytest


@pytest.mark.xdist_group("group_check")
def test_loadgroup_puts_a_group_on_one_worker(request):
    if not hasattr(request.config, "workerinput"):
        pytest.skip("not running under xdist")
    if not request.config.getvalue("loadgroup"):
        pytest.skip("xdist runs without --dist loadgroup")
    assert request.node.nodeid.endswith("@group_check"), (
        f"{request.node.nodeid}: xdist_group has no effect (pytest and pytest-xdist versions "
        "disagree); see the pin on pytest in pyproject.toml")
