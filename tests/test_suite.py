"""The test suite's own set-up, as `make test` runs it."""

import pytest


def test_under_loadgroup_each_file_is_one_group(request):
    """`make test` runs `pytest -n 2 --dist loadgroup` so that a file's module fixtures (a trained
    model, a kernel) are built once: pytest-xdist appends each test's group to its id and sends a
    group to one worker. Without the suffix (pytest 9.2 with pytest-xdist 3.8, or conftest's hook
    running after xdist's) the tests of a file went to both workers and the suite took 1.5 min longer."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("only under pytest -n N --dist loadgroup (make test)")
    assert request.node.nodeid.endswith("@test_suite"), request.node.nodeid
