"""Benchmarks reuse the test fixtures (real data, a private cache, the small nq subset)."""
from tests.conftest import (  # noqa: F401
    data_dir,
    nq,
    one_torch_thread,
    pytest_configure,
    short_dataset,
    small_dataset,
    truncated_dataset,
)
