"""Every bad input gets a ConfigError naming the column or field and the fix; the CLI prints one line and
exits 2 (no traceback)."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from openmindspore.cli.main import main
from openmindspore.errors import ConfigError
from openmindspore.features import InterventionSelector, intervention_importance
from openmindspore.models.sklearn import build_pipeline


def _xy(n: int = 60, p: int = 3):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, p))
    return X, X[:, 0] + 0.1 * rng.standard_normal(n)


def test_non_numeric_column_is_named():
    X, y = _xy()
    Xo = X.astype(object)
    Xo[5, 1] = "high"
    with pytest.raises(ConfigError, match=r"X\['x2'\]='high' is invalid: expected a numeric column") as e:
        intervention_importance("ridge", Xo, y)
    assert "encode it as numbers" in str(e.value)
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X, columns=["age", "income", "city"]).astype({"city": object})
    df.loc[3, "city"] = "Paris"
    with pytest.raises(ConfigError, match=r"X\['city'\]='Paris'"):
        intervention_importance("ridge", df, y)


def test_nan_column_is_named():
    X, y = _xy()
    X[[2, 7], 2] = np.nan
    with pytest.raises(ConfigError, match=r"X\['x3'\]='2 NaN or inf value\(s\)'.*impute"):
        intervention_importance("ridge", X, y)
    with pytest.raises(ConfigError, match="x3"):
        InterventionSelector().fit(X, y)
    with pytest.raises(ConfigError, match=r"^y="):
        intervention_importance("ridge", _xy()[0], np.r_[np.nan, y[1:]])


def test_fewer_than_two_features_and_image_data():
    X, y = _xy()
    with pytest.raises(ConfigError, match=r"'1 feature\(s\)'.*at least 2 features"):
        intervention_importance("ridge", X[:, :1], y)
    with pytest.raises(ConfigError, match="image data is not supported"):
        intervention_importance("ridge", np.zeros((60, 1, 8, 8)), y)
    with pytest.raises(ConfigError, match="1-D target with 60 values"):
        intervention_importance("ridge", X, y[:50])


def test_unfitted_model():
    X, y = _xy()
    with pytest.raises(ConfigError, match="model='LogisticRegression' is invalid: expected a fitted model"):
        intervention_importance(LogisticRegression(), X, (y > 0).astype(int), cv="prefit")
    with pytest.raises(ConfigError, match="model"):
        intervention_importance(object(), X, y)
    with pytest.raises(ConfigError, match="cv"):
        intervention_importance("ridge", X, y, cv="all")


def test_model_task_mismatch_and_tiny_data():
    X, y = _xy()
    with pytest.raises(ConfigError, match="ridge does not fit a classification target; use logreg"):
        intervention_importance("ridge", X, (y > 0).astype(int))
    with pytest.raises(ConfigError, match="at least 10 rows for 5-fold"):
        intervention_importance("ridge", X[:8], y[:8])
    with pytest.raises(ConfigError, match="repeats"):
        intervention_importance("ridge", X, y, repeats=0)


def test_selector_requires_y():
    X, _ = _xy()
    with pytest.raises(ValueError, match="requires y"):
        InterventionSelector().fit(X)


def test_unregistered_feature_step():
    with pytest.raises(ConfigError, match="spec.features.kind='magic'"):
        build_pipeline(
            [{"step": "features", "kind": "magic"}, {"step": "model", "kind": "ridge", "alpha": 1}], "regression"
        )


@pytest.mark.parametrize(
    "argv,fragment",
    [
        (["--dataset", "digits"], "--dataset='digits' is invalid: expected a tabular dataset"),
        (["--dataset", "wine", "--model", "ridge"], "ridge does not fit a classification target; use logreg"),
        (["--dataset", "wine", "--kind", "conditonal"], "did you mean conditional?"),
        (["--dataset", "wine", "--seeds", "0"], "seeds=0"),
        (["--model", "logreg"], "--dataset=None is invalid"),
        (["--dataset", "wine", "--model", "no/such/run"], "or an existing mlp run directory"),
        (["--dataset", "nosuch"], "dataset='nosuch' is invalid"),
        (["--dataset", "wine", "--tolerance", "0.5"], "expected --select with --kind conditional"),
        (["--dataset", "wine", "--minimal"], "--minimal=True is invalid: expected --select with --kind conditional"),
        (["--dataset", "wine", "--select", "--tolerance", "-1"], "tolerance=-1.0"),
        (["--dataset", "wine", "--select", "--tolerance", "nan"], "tolerance=nan"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys, argv, fragment):
    assert main(["features", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("oms features: error:") and "\n" not in err and fragment in err, err
    assert "Traceback" not in err
