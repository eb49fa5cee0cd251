"""User models: ``{class_path, init_args}`` resolution and its errors, the output-fits-the-task check,
graph-safe user cells, and the Python API ``train(config, model=cell_or_factory)``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from openmindspore.errors import ConfigError

NETS = """
import mindspore.nn as nn
from mindspore import ops


class TinyNet(nn.Cell):
    def __init__(self, in_features: int, num_classes: int, hidden: int = 8):
        super().__init__()
        self.a = nn.Dense(in_features, hidden)
        self.b = nn.Dense(hidden, num_classes)

    def construct(self, x):
        return self.b(ops.relu(self.a(x.reshape(x.shape[0], -1))))


class FastNet(TinyNet):
    graph_safe = True


class Picky(nn.Cell):
    def __init__(self, width: int):
        super().__init__()
        if width < 1:
            raise ValueError("width must be positive")
        self.d = nn.Dense(64, 10)

    def construct(self, x):
        return self.d(x.reshape(x.shape[0], -1))


class NotACell:
    pass


def make_net(num_classes: int, in_features: int):
    return TinyNet(in_features, num_classes, 4)
"""


@pytest.fixture
def nets(tmp_path, monkeypatch):
    mod = tmp_path / "code"
    mod.mkdir()
    (mod / "usernets.py").write_text(NETS)
    (mod / "brokennets.py").write_text("import no_such_module_here\n")
    monkeypatch.syspath_prepend(str(mod))
    return mod


PROVIDED = {"num_classes": 10, "num_outputs": 10, "input_shape": (1, 8, 8), "in_features": 64, "in_channels": 1}


@pytest.mark.parametrize(
    "class_path,init_args,fragment",
    [
        ("brokennets.Net", {}, "ModuleNotFoundError: No module named 'no_such_module_here'"),
        ("usernets.Nope", {}, "a name defined in usernets (its classes: ['FastNet', 'NotACell', 'Picky', 'TinyNet'])"),
        ("usernets.NotACell", {}, "expected a mindspore.nn.Cell subclass"),
        ("usernets.TinyNet", {"hiden": 3}, "unexpected keyword argument 'hiden'"),
        ("usernets.Picky", {}, "missing a required argument: 'width'"),
        ("usernets.Picky", {"width": 0}, "constructing it raised ValueError: width must be positive"),
        ("TinyNet", {}, "a dotted import path"),
    ],
)
def test_user_model_errors_name_field_value_and_fix(nets, ms_cpu, class_path, init_args, fragment):
    from openmindspore.models.registry import create_user_model

    with pytest.raises(ConfigError) as e:
        create_user_model(class_path, init_args, PROVIDED)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_data_sizes_are_filled_in_only_where_asked(nets, ms_cpu):
    from openmindspore.models.registry import build_object, create_user_model

    net = create_user_model("usernets.TinyNet", {"hidden": 5}, PROVIDED)
    assert tuple(net.a.weight.shape) == (5, 64) and tuple(net.b.weight.shape) == (10, 5)
    own = create_user_model("usernets.TinyNet", {"num_classes": 3}, PROVIDED)  # init_args win
    assert tuple(own.b.weight.shape) == (3, 8)
    import usernets

    assert build_object(usernets.make_net, PROVIDED).b.weight.shape[0] == 10
    assert build_object(net, PROVIDED) is net


def test_output_that_does_not_fit_the_task_says_which(nets, ms_cpu):
    from openmindspore.train import Trainer, config_from_dict

    cfg = {"dataset": "digits", "model": {"class_path": "usernets.TinyNet", "init_args": {"num_classes": 3}}}
    with pytest.raises(ConfigError) as e:
        Trainer(config_from_dict(cfg))
    msg = str(e.value)
    assert "10 logits, one per class of digits (10 classes)" in msg and "it returns 3 per sample" in msg
    bad_input = {"dataset": "iris", "model": {"class_path": "usernets.Picky", "init_args": {"width": 2}}}
    with pytest.raises(ConfigError, match=r"inputs of shape \[batch, 4\].*forward pass raised"):
        Trainer(config_from_dict(bad_input))


def test_user_models_are_seeded_and_graph_safe_ones_compile(nets, ms_cpu):
    from openmindspore.train import Trainer, config_from_dict

    def trainer(path: str, compile_: bool = True, seed: int = 0) -> Trainer:
        return Trainer(
            config_from_dict(
                {
                    "dataset": "digits",
                    "model": {"class_path": path},
                    "batch_size": 32,
                    "compile": compile_,
                    "seed": seed,
                }
            )
        )

    a, b = trainer("usernets.TinyNet"), trainer("usernets.TinyNet")
    assert a.params_sha256() == b.params_sha256() != trainer("usernets.TinyNet", seed=1).params_sha256()
    assert not a.compiled  # a user cell runs op by op unless it declares graph_safe
    fast, slow = trainer("usernets.FastNet"), trainer("usernets.FastNet", compile_=False)
    assert fast.compiled and not slow.compiled
    for t in (fast, slow):
        for _ in range(3):
            t.train_step()
    for (name, p), q in zip(fast.params_numpy().items(), slow.params_numpy().values()):
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6, err_msg=name)


PY_API = """
import json, sys
import mindspore.nn as nn
from openmindspore.train import config_from_dict, evaluate_run, resume, train
from openmindspore.errors import ConfigError


class Net(nn.Cell):
    def __init__(self, in_features, num_classes):
        super().__init__()
        self.d = nn.Dense(in_features, num_classes)

    def construct(self, x):
        return self.d(x)


cfg = config_from_dict({"dataset": "iris", "steps": 6, "batch_size": 16, "checkpoint_every": 3})
factory = lambda in_features, num_classes: Net(in_features, num_classes)  # noqa: E731
c = train(cfg, model=factory, out_dir="c")
train(cfg, model=factory, out_dir="a", max_steps=3)
try:
    resume("a")
    print("resumed without the model")
except ConfigError as e:
    print("refused:", e)
b = resume("a", model=factory)
d = train(cfg, model=Net(4, 3), out_dir="d")
print(json.dumps({"b": b["params_sha256"], "c": c["params_sha256"], "model": c["model"], "d": d["model"],
                  "eval": evaluate_run("d", model=Net(4, 3))["accuracy"]}))
"""


def test_python_api_takes_a_cell_or_a_factory(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PY_API)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("refused: model='__main__.<lambda>' is invalid") and "pass model=" in lines[0]
    out = json.loads(lines[-1])
    assert out["b"] == out["c"]  # 3 steps + resume(model=factory) == 6 steps: a factory's cell is seeded
    assert out["model"] == "__main__.<lambda>" and out["d"] == "__main__.Net" and 0.0 <= out["eval"] <= 1.0


def test_regression_task_on_a_csv_trains_and_checks_its_output(tmp_path, nets, ms_cpu):
    from userdata_testing import write_flowers_csv

    from openmindspore.train import Trainer, config_from_dict

    write_flowers_csv(tmp_path / "flowers.csv")
    data = {"format": "csv", "path": str(tmp_path / "flowers.csv"), "label": "petal_length", "task": "regression"}
    t = Trainer(config_from_dict({"dataset": data, "model": {"class_path": "usernets.TinyNet"}, "batch_size": 24}))
    assert t.task == "regression" and tuple(t.model.b.weight.shape) == (1, 8)  # num_classes filled with 1
    before = t.evaluate("val")["mse"]
    for _ in range(30):
        t.train_step()
    after = t.evaluate("val")
    assert set(after) == {"mse", "r2"} and after["mse"] < before
    wide = {"class_path": "usernets.TinyNet", "init_args": {"num_classes": 2}}
    with pytest.raises(ConfigError, match=r"one output per sample for regression.*it returns \[2, 2\]"):
        Trainer(config_from_dict({"dataset": data, "model": wide}))
