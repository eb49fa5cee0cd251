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


@pytest.fixture(scope="session")
def readme_dir(tmp_path_factory):
    """One folder for the README's blocks (readme_testing): runs they make are shared by the tests of them."""
    return tmp_path_factory.mktemp("readme")


@pytest.fixture(scope="session")
def readme_usage(readme_dir):
    """The README's Usage block, run once (readme_testing.run_usage)."""
    from readme_testing import run_usage

    return run_usage(readme_dir)


@pytest.fixture(scope="session")
def readme_user_project(readme_dir):
    """The README's "Your model, your data" block, run once (readme_testing.run_user_project)."""
    from readme_testing import run_user_project

    return run_user_project(readme_dir)


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
