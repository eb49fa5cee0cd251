"""Shared test fixtures. MindSpore runs in PyNative mode on CPU; its C++ logs are silenced."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("GLOG_v", "3")


@pytest.fixture(scope="session")
def ms_cpu():
    """MindSpore in PyNative mode on CPU (the platform's default context)."""
    from openmindspore.train.trainer import setup_mindspore

    setup_mindspore()
    import mindspore

    return mindspore


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001 - pytest's hook signature
    """Say in the summary when reference comparisons were skipped for want of the `test` extra."""
    from oms_testing import TEST_EXTRA_SKIPS

    if TEST_EXTRA_SKIPS:
        missing = ", ".join(sorted(set(TEST_EXTRA_SKIPS)))
        terminalreporter.write_line(
            f"NOTE: reference tests skipped because the test extra is not installed ({missing}); "
            "run `make test` or pip install -e '.[test]' to run them",
            yellow=True,
        )
