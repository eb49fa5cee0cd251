"""Generated tabular datasets (registered at import by :mod:`openmindspore.data.datasets`).

``friedman1``: scikit-learn's ``make_friedman1(n_samples=1000, noise=1.0, random_state=0)``,
``y = 10 sin(pi x1 x2) + 20 (x3 - 0.5)^2 + 10 x4 + 5 x5 + noise``; x6 to x10 are uninformative.
"""

from __future__ import annotations

from openmindspore.data.datasets import Dataset, _make, register_dataset

__all__: list[str] = []


@register_dataset(
    "friedman1",
    "regression",
    "sklearn.datasets.make_friedman1",
    "1,000 generated rows, 10 features (only x1 to x5 informative); split 80/10/10",
)
def _friedman1(seed: int) -> Dataset:
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=1000, noise=1.0, random_state=0)
    names = [f"x{i + 1}" for i in range(x.shape[1])]
    return _make("friedman1", "regression", x, y, seed, meta={"feature_names": names})
