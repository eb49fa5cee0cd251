"""The friedman1 dataset: make_friedman1(n_samples=1000, noise=1.0, random_state=0), split 800/100/100,
regression, columns x1..x10 of which only x1..x5 enter the target."""

import numpy as np

from openmindspore.data import list_datasets, load_dataset


def test_friedman1_is_registered_and_generated_as_specified():
    info = {d.name: d for d in list_datasets()}["friedman1"]
    assert info.task == "regression" and info.source == "sklearn.datasets.make_friedman1"
    ds = load_dataset("friedman1")
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (800, 100, 100)
    assert ds.input_shape == (10,) and ds.meta["feature_names"] == [f"x{i}" for i in range(1, 11)]
    from sklearn.datasets import make_friedman1

    x, y = make_friedman1(n_samples=1000, noise=1.0, random_state=0)
    assert np.allclose(np.sort(np.concatenate([ds.y_train, ds.y_val, ds.y_test])), np.sort(y.astype(np.float32)))
    # only x1..x5 are informative: the noise-free target is a function of them alone
    f = 10 * np.sin(np.pi * x[:, 0] * x[:, 1]) + 20 * (x[:, 2] - 0.5) ** 2 + 10 * x[:, 3] + 5 * x[:, 4]
    assert np.std(y - f) < 1.1
    assert load_dataset("friedman1", split_seed=1).y_test.tolist() != ds.y_test.tolist()  # the seed moves the split
