"""Saliency maps: |d loss / d x| equals finite differences, Grad-CAM equals its closed form, maps are taken in
inference mode (independent of the rest of the batch), and the built-in CNN's twin supplies the input
gradient its training step skips."""

from __future__ import annotations

import numpy as np
import pytest
from mindspore import Tensor

from openmindspore.data import load_dataset
from openmindspore.models import create_model
from openmindspore.train import Trainer, config_from_dict
from openmindspore.train.saliency import gradcam_maps, gradient_maps, resize_bilinear
from openmindspore.train.trainer import setup_mindspore

TANH_CNN = [
    {"type": "conv", "channels": 4, "kernel": 3},
    {"type": "tanh"},
    {"type": "avgpool", "kernel": 2},
    {"type": "dense", "units": 16},
    {"type": "tanh"},
]


@pytest.fixture(scope="module")
def data():
    setup_mindspore()
    return load_dataset("synthetic")


def _loss_cell():
    from openmindspore.train.tasks import get_task

    return get_task("classification").loss_cell()


@pytest.mark.parametrize("compiled", [True, False])
def test_gradient_maps_equal_finite_differences(data, compiled):
    """A smooth (tanh) CNN built with its input gradient: each map pixel is |d loss / d x| by central
    differences of the summed loss, in inference mode."""
    model = create_model("cnn", input_shape=(1, 8, 8), num_classes=4, layers=TANH_CNN, seed=1, input_grad=True)
    loss = _loss_cell()
    x, y = data.x_train[:3].astype(np.float32), data.y_train[:3]
    maps = gradient_maps(model, loss, x, y, chunk=4, compiled=compiled)
    assert maps.shape == (3, 8, 8) and maps.dtype == np.float32

    def f(xx: np.ndarray) -> float:
        return float(loss(model(Tensor(xx.astype(np.float32))), Tensor(y)).asnumpy())

    rng = np.random.default_rng(0)
    eps = 1e-2
    for _ in range(12):
        i, r, c = int(rng.integers(3)), int(rng.integers(8)), int(rng.integers(8))
        up, down = x.copy(), x.copy()
        up[i, 0, r, c] += eps
        down[i, 0, r, c] -= eps
        fd = (f(up) - f(down)) / (2 * eps)
        assert abs(abs(fd) - maps[i, r, c]) <= 2e-3 + 2e-2 * abs(fd), (i, r, c, fd, maps[i, r, c])
    assert maps.max() > 1e-3


def test_built_in_cnn_training_skips_the_input_gradient_and_the_twin_supplies_it(data):
    cfg = config_from_dict(
        {"dataset": "synthetic", "steps": 2, "batch_size": 32, "model": {"name": "cnn", "layers": TANH_CNN}}
    )
    tr = Trainer(cfg)
    x, y = data.x_train[:8], data.y_train[:8]
    skipped = gradient_maps(tr.model, tr.loss_cell, x, y, chunk=8)
    twin = tr.saliency_model()
    assert twin is not tr.model and twin.input_grad and not tr.model.input_grad
    assert not twin.weight_grad and tr.model.weight_grad  # the twin takes no parameter gradients
    maps = gradient_maps(twin, tr.loss_cell, x, y, chunk=8)
    reference = create_model("cnn", input_shape=(1, 8, 8), num_classes=4, layers=TANH_CNN, seed=0, input_grad=True)
    assert np.abs(skipped).max() == 0.0  # the kernel's input gradient is off in training
    np.testing.assert_array_equal(maps, gradient_maps(reference, tr.loss_cell, x, y, chunk=8))
    tr.train_step()  # the twin follows the training parameters
    np.testing.assert_array_equal(
        gradient_maps(tr.saliency_model(), tr.loss_cell, x, y, chunk=8),
        gradient_maps(_copy_into(reference, tr.model), tr.loss_cell, x, y, chunk=8),
    )


def _copy_into(dst, src):
    from mindspore import ops

    own = {p.name: p for p in src.get_parameters()}
    for p in dst.get_parameters():
        ops.assign(p, own[p.name].value())
    return dst


def test_maps_are_taken_in_inference_mode(data):
    """With batch norm and dropout, a sample's map does not depend on the other rows of its chunk."""
    layers = [
        {"type": "conv", "channels": 4, "kernel": 3},
        {"type": "batchnorm"},
        {"type": "relu"},
        {"type": "dropout", "rate": 0.5},
        {"type": "dense", "units": 8},
    ]
    model = create_model("cnn", input_shape=(1, 8, 8), num_classes=4, layers=layers, seed=2, input_grad=True)
    model.set_train(True)  # saliency switches to inference mode itself
    loss = _loss_cell()
    x, y = data.x_train[:16], data.y_train[:16]
    alone = gradient_maps(model, loss, x[:4], y[:4], chunk=16)
    mixed = gradient_maps(model, loss, np.concatenate([x[:4], x[8:16] * 3]), np.concatenate([y[:4], y[8:16]]), chunk=16)
    np.testing.assert_allclose(alone, mixed[:4], rtol=1e-5, atol=1e-7)
    assert not model.training


def test_gradcam_equals_its_closed_form(data):
    """conv -> ReLU -> dense head: d logit_y / d A is the head's weight row, so Grad-CAM is
    relu(sum_c mean(W_y[c]) A_c) with A from a numpy convolution; channels-last and NCHW models agree."""
    layers = [{"type": "conv", "channels": 4, "kernel": 3}, {"type": "relu"}]
    x, y = data.x_train[:5], data.y_train[:5]
    for channels_last in (True, False):
        model = create_model(
            "cnn", input_shape=(1, 8, 8), num_classes=4, layers=layers, seed=3, channels_last=channels_last
        )
        params = {p.name: p.asnumpy() for p in model.get_parameters()}
        w = params[next(k for k in params if k.startswith("body.0") and k.endswith("weight"))]
        b = params[next(k for k in params if k.startswith("body.0") and k.endswith("bias"))]
        head = params[next(k for k in params if k.endswith("weight") and not k.startswith("body.0"))]
        padded = np.pad(x[:, 0].astype(np.float64), ((0, 0), (1, 1), (1, 1)))
        a = np.zeros((5, 4, 8, 8))
        for o in range(4):
            for i in range(3):
                for j in range(3):
                    a[:, o] += w[o, 0, i, j] * padded[:, i : i + 8, j : j + 8]
            a[:, o] += b[o]
        a = np.maximum(a, 0)
        wy = head[y].reshape(5, 4, 8, 8).mean(axis=(2, 3))
        expect = np.maximum((wy[:, :, None, None] * a).sum(1), 0)
        got = gradcam_maps(model, x, y, chunk=8, compiled=channels_last)  # the NCHW layers are for non-CPU graphs
        np.testing.assert_allclose(got, expect, rtol=1e-4, atol=1e-5)


def test_resize_bilinear_is_half_pixel_bilinear():
    m = np.arange(4, dtype=np.float32).reshape(1, 2, 2)
    out = resize_bilinear(m, 4, 4)
    np.testing.assert_allclose(out[0, 0], [0.0, 0.25, 0.75, 1.0])
    np.testing.assert_allclose(out[0, :, 0], [0.0, 0.5, 1.5, 2.0])
    assert np.array_equal(resize_bilinear(m, 2, 2), m)


def test_gradcam_needs_the_spec_cnn():
    from openmindspore.errors import ConfigError

    cfg = {"dataset": "synthetic", "steps": 2, "model": {"name": "mlp", "hidden": [8]}}
    cfg["augment"] = [{"name": "keep_cutout", "size": 3}]
    cfg["saliency"] = {"method": "gradcam"}
    tr = Trainer(config_from_dict(cfg))
    with pytest.raises(ConfigError) as e:
        tr.train_step()
    assert e.value.field == "saliency.method" and "use method: gradient" in str(e.value)


def test_input_only_twin_gives_the_same_maps_and_run_as_a_twin_with_weight_gradients():
    """The default CNN on MNIST with shift + saliency_mix (the step-time benchmark's combination) over three
    refreshes: the input-only twin's maps, the augmented batches they choose and the trained parameters are
    bitwise those of a run whose twin also computes the weight gradients (the twin before issue 17's fix)."""
    from openmindspore.train.building import build_model
    from openmindspore.train.saliency import with_input_grad

    cfg = config_from_dict(
        {
            "dataset": "mnist5k",
            "train_subset": 96,  # 3 steps of 32 an epoch: refreshes at steps 0, 6 and 12
            "batch_size": 32,
            "steps": 14,
            "seed": 17005,
            "augment": [{"name": "shift", "max": 2}, {"name": "saliency_mix", "alpha": 1.0, "p": 0.5}],
            "saliency": {"chunk": 40},  # 96 rows: three chunks, the last one padded
        }
    )
    new, old = Trainer(cfg), Trainer(cfg)
    old.maps_model._twin = build_model(with_input_grad(cfg), old.data, old.task_impl)  # weight gradients on
    assert not new.saliency_model().weight_grad and old.saliency_model().weight_grad
    for _ in range(cfg.steps):  # same maps, so same augmented batches, so bitwise the same parameters
        new.train_step()
        old.train_step()
        np.testing.assert_array_equal(new.saliency.maps, old.saliency.maps)
        for a, b in zip(new.model.get_parameters(), old.model.get_parameters()):
            np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())
    assert new.saliency.refreshes == old.saliency.refreshes == 3 and new.saliency.maps.max() > 0


def test_a_trained_model_cannot_drop_its_weight_gradients():
    """``weight_grad`` is for the maps' twin only: a config asking for it is refused with the field and fix."""
    with pytest.raises(Exception, match=r"model\.weight_grad=False .*remove weight_grad"):
        config_from_dict({"dataset": "synthetic", "model": {"name": "cnn", "weight_grad": False}})
    assert config_from_dict({"dataset": "synthetic", "model": {"name": "cnn", "weight_grad": True}})
