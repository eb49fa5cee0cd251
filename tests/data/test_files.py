"""The user's own files as datasets: every format, deterministic (stratified) splits, the preprocessing
fitted on the training split only and re-applied unchanged to raw samples, and each bad input named."""

from __future__ import annotations

import numpy as np
import pytest
from userdata_testing import SPECIES, write_flowers_csv, write_image_folder, write_mindrecord, write_npz

from openmindspore.data import Preprocessor, load_dataset, parse_dataset
from openmindspore.data.files import read_labelled
from openmindspore.errors import ConfigError


def _csv(tmp_path, **kw):
    write_flowers_csv(tmp_path / "flowers.csv")
    return parse_dataset({"format": "csv", "path": "flowers.csv", "label": "species", **kw}, base_dir=tmp_path)


def test_csv_classification_split_is_stratified_deterministic_and_preprocessing_is_train_only(tmp_path):
    spec = _csv(tmp_path)
    assert spec["path"] == str(tmp_path / "flowers.csv")  # resolved against the base dir
    d = load_dataset(spec)
    assert d.task == "classification" and d.num_classes == 3
    assert d.preprocessor is not None and d.preprocessor.class_names == list(SPECIES)
    # 4 numeric columns + one-hot soil (2 categories)
    assert d.input_shape == (6,) and d.preprocessor.feature_names[-1] == "soil"
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (72, 9, 9)
    assert np.bincount(d.y_val).tolist() == [3, 3, 3] and np.bincount(d.y_test).tolist() == [3, 3, 3]
    # standardised with the training split's statistics only
    assert np.allclose(d.x_train[:, :4].mean(axis=0), 0, atol=1e-5)
    assert not np.allclose(d.x_test[:, :4].mean(axis=0), 0, atol=1e-3)
    # another seed, another split; the same spec, the same arrays
    again = load_dataset(parse_dataset({**spec, "split_seed": 0}))
    assert np.array_equal(again.x_train, d.x_train)
    other = load_dataset({**spec, "split_seed": 1})
    assert not np.array_equal(other.y_test, d.y_test) or not np.array_equal(other.x_test, d.x_test)


def test_raw_rows_through_the_saved_preprocessor_equal_the_training_inputs(tmp_path):
    spec = _csv(tmp_path)
    d = load_dataset(spec)
    pre = Preprocessor.from_dict(d.preprocessor.to_dict())  # as saved in the run directory
    from openmindspore.data.tabular import read_csv

    header, cells = read_csv(spec["path"])
    rows = [dict(zip(header, r)) for r in cells]
    x_all = pre.transform_rows(rows)
    # every training row is one of the file's rows, transformed identically (dict rows, raw strings)
    matches = (np.abs(x_all[None, :, :] - d.x_train[:, None, :]).max(axis=2) < 1e-6).any(axis=1)
    assert matches.all()
    assert pre.encode_labels(["virginica", "setosa"]).tolist() == [2, 0]
    assert pre.decode_labels(np.array([1])) == ["versicolor"]
    # numbers instead of strings, an unseen category -> all zeros, an empty cell -> the training mean
    x = pre.transform_rows(
        [{"sepal_length": 5.0, "sepal_width": "", "petal_length": 1.5, "petal_width": 0.3, "soil": "rock"}]
    )
    assert x.shape == (1, 6) and x[0, 1] == 0.0 and x[0, 4:].tolist() == [0.0, 0.0]
    x, y = read_labelled(pre, spec["path"], spec)  # `oms eval --data`: a labelled file, not refitted
    assert len(x) == 90 and np.bincount(y).tolist() == [30, 30, 30]


def test_csv_regression_and_separate_test_file(tmp_path):
    write_flowers_csv(tmp_path / "test.csv", n=12, seed=5)
    spec = _csv(tmp_path, label="petal_width", task="regression", test_path="test.csv")
    d = load_dataset(spec)
    assert d.task == "regression" and d.y_train.dtype == np.float32 and d.num_classes == 0
    assert len(d.x_test) == 12 and len(d.x_val) == 9  # test from the file; val split off the 90 rows
    assert d.input_shape == (3 + 2 + 3,)  # species became a one-hot feature


def test_image_folder(tmp_path):
    write_image_folder(tmp_path / "imgs")
    d = load_dataset(parse_dataset({"format": "imagefolder", "path": "imgs"}, base_dir=tmp_path))
    assert d.input_shape == (3, 10, 12) and d.num_classes == 3
    assert d.preprocessor.class_names == ["blue", "green", "red"]
    assert np.bincount(d.y_test).tolist() == [2, 2, 2]
    means = d.x_train.mean(axis=(0, 2, 3))
    assert np.allclose(means, 0, atol=1e-4)  # per-channel standardisation
    small = load_dataset({"format": "imagefolder", "path": str(tmp_path / "imgs"), "image_size": 8, "channels": 1})
    assert small.input_shape == (1, 8, 8)
    # a raw image file through the saved preprocessor = the training input
    pre = Preprocessor.from_dict(d.preprocessor.to_dict())
    from openmindspore.data.images import list_imagefolder

    paths, _ = list_imagefolder(tmp_path / "imgs")
    x = pre.transform_images([str(p) for p in paths])
    assert (
        (np.abs(x.reshape(len(x), -1)[None] - d.x_train.reshape(len(d.x_train), -1)[:, None]).max(2) < 1e-6)
        .any(1)
        .all()
    )


def test_npz_and_mindrecord(tmp_path):
    d = load_dataset({"format": "npz", "path": str(write_npz(tmp_path / "a.npz", with_test=True))})
    assert d.task == "classification" and d.input_shape == (5,) and len(d.x_test) == 9
    m = load_dataset({"format": "mindrecord", "path": str(write_mindrecord(tmp_path / "img.mindrecord"))})
    assert m.input_shape == (1, 6, 6) and m.num_classes == 2 and m.preprocessor.kind == "image"
    v = load_dataset({"format": "mindrecord", "path": str(write_mindrecord(tmp_path / "v.mindrecord", images=False))})
    assert v.input_shape == (4,) and v.preprocessor.kind == "array"


@pytest.mark.parametrize(
    "spec,fragment",
    [
        ({"format": "csv", "path": "missing.csv", "label": "species"}, "dataset.path="),
        ({"format": "csv", "path": "flowers.csv", "label": "specie"}, "did you mean species?"),
        ({"format": "csv", "path": "flowers.csv", "label": "species", "features": ["nope"]}, "dataset.features='nope'"),
        ({"format": "csv", "path": "one.csv", "label": "y"}, "at least 2 classes (column 'y' has only 'x')"),
        ({"format": "csv", "path": "flowers.csv"}, "dataset.label=None"),
        ({"format": "cvs", "path": "flowers.csv"}, "did you mean csv?"),
        ({"format": "imagefolder", "path": "mixed"}, "add image_size: [8, 8]"),
        ({"format": "npz", "path": "a.npz", "x": "features"}, "dataset.x='features'"),
        (
            {"format": "csv", "path": "flowers.csv", "label": "species", "val_fraction": 0.5, "test_fraction": 0.5},
            "0.9",
        ),
        ("flowers.csv", "write dataset: {format: csv, path: flowers.csv, label: COLUMN}"),
    ],
)
def test_bad_data_is_one_named_error(tmp_path, spec, fragment):
    from PIL import Image

    write_flowers_csv(tmp_path / "flowers.csv")
    (tmp_path / "one.csv").write_text("a,b,y\n1,2,x\n3,4,x\n5,6,x\n")
    for cls, h in (("a", 8), ("b", 9)):
        (tmp_path / "mixed" / cls).mkdir(parents=True)
        Image.fromarray(np.zeros((h, 8), np.uint8)).save(tmp_path / "mixed" / cls / "1.png")
    write_npz(tmp_path / "a.npz")
    with pytest.raises(ConfigError) as e:
        load_dataset(parse_dataset(spec, base_dir=tmp_path))
    assert fragment in str(e.value) and "\n" not in str(e.value)
