"""Benchmarks reuse the test fixtures (real data, a private cache, the small nq subset)."""
import pytest

from tests.conftest import (  # noqa: F401
    data_dir,
    nq,
    one_torch_thread,
    pytest_configure,
    short_dataset,
    small_dataset,
    truncated_dataset,
)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """A benchmark times one process on a quiet machine: no xdist workers here (pyproject.toml's addopts
    run the tests in parallel, and pytest-benchmark switches itself off under xdist)."""
    config.option.numprocesses = 0
