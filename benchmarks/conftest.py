"""Benchmarks reuse the test fixtures (real data, a private cache, the small nq subset)."""
from tests.conftest import data_dir, nq, pytest_configure, small_dataset  # noqa: F401
