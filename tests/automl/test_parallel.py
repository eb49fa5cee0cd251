"""Parallel evaluation through Ray tasks (embedded cluster)."""

import pytest

from openmindspore.automl import run_search
from openmindspore.engine import tasks as _parallel


def _square(x):
    return x * x


def test_sequential_when_one_worker():
    assert _parallel.parallel_map(_square, [1, 2, 3], workers=1) == [1, 4, 9]


@pytest.fixture
def ray_cluster():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.mark.distributed
@pytest.mark.slow
def test_parallel_search_equals_sequential_batches(ray_cluster, monkeypatch):
    assert _parallel.parallel_map(_square, list(range(6)), workers=2) == [0, 1, 4, 9, 16, 25]
    par = run_search("sklearn-classifier", "markov", 8, dataset="iris", seed=2, workers=2)
    assert ray_cluster.is_initialized()  # a cluster it did not start is left running
    monkeypatch.setattr(_parallel, "parallel_map", lambda fn, items, workers, engine="ray": [fn(x) for x in items])
    seq = run_search("sklearn-classifier", "markov", 8, dataset="iris", seed=2, workers=2)
    strip = lambda r: [{k: v for k, v in t.to_json().items() if k != "duration_s"} for t in r.trials]  # noqa: E731
    assert strip(par) == strip(seq)
    assert all(t.ok for t in par.trials)
