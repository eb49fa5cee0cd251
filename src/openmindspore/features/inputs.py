"""Checks of the tables handed to ``openmindspore.features``: owns what counts as a usable feature table
and target, and the :class:`~openmindspore.errors.ConfigError` each bad input gets (naming the column).

A usable table is 2-D (rows x features), numeric, finite, with at least 2 features; image data (more
than 2 dimensions) is refused rather than flattened, because pixels are not features one intervenes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from openmindspore.errors import ConfigError

__all__ = ["Task", "ColumnTypeError", "check_table", "check_target", "infer_task", "default_names"]

Task = Literal["classification", "regression"]


class ColumnTypeError(ConfigError, TypeError):
    """A column holding values that are not numbers (also a ``TypeError``, as NumPy raises)."""


def default_names(p: int) -> list[str]:
    """``x1 .. xp``: 1-based names of unnamed columns."""
    return [f"x{j + 1}" for j in range(p)]


def _column_names(X: Any, p: int, names: Sequence[str] | None) -> list[str]:
    if names is not None:
        if len(names) != p:
            raise ConfigError("feature_names", list(names), f"{p} names, one per column of X")
        return [str(n) for n in names]
    cols = getattr(X, "columns", None)
    if cols is not None and len(cols) == p:
        return [str(c) for c in cols]
    return default_names(p)


def check_table(X: Any, names: Sequence[str] | None = None, where: str = "X") -> tuple[np.ndarray, list[str]]:
    """``X`` as a float64 ``(n, p)`` array plus its column names; a :class:`ConfigError` that names the
    column for anything else (non-numeric or NaN/inf column, fewer than 2 features, image data)."""
    if hasattr(X, "toarray") or hasattr(X, "tocsr"):
        raise ConfigError(where, type(X).__name__, "a dense table", "convert a sparse matrix with X.toarray()")
    arr = np.asarray(X)
    if arr.ndim > 2:
        raise ConfigError(
            where,
            f"an array of shape {arr.shape}",
            "a 2-D table (rows x features); image data is not supported",
            "intervention importance is for tabular features: use a tabular dataset (see `oms datasets`)",
        )
    if arr.ndim < 2:
        raise ConfigError(
            where, f"an array of shape {arr.shape}", "a 2-D table (rows x features)", "reshape a single column"
        )
    n, p = arr.shape
    cols = _column_names(X, p, names)
    if p < 2:
        raise ConfigError(where, f"{p} feature(s)", "at least 2 features", "importance is relative to other columns")
    if n == 0:
        raise ConfigError(where, "0 sample(s)", "at least one row")
    if arr.dtype.kind in "biuf":
        out = arr.astype(np.float64)
    else:
        out = np.empty((n, p))
        for j in range(p):
            try:
                out[:, j] = np.asarray(arr[:, j], dtype=np.float64)
            except (TypeError, ValueError) as e:
                bad = next((v for v in arr[:, j] if not isinstance(v, int | float | np.number)), arr[0, j])
                cls = ColumnTypeError if isinstance(e, TypeError) else ConfigError
                raise cls(
                    f"{where}[{cols[j]!r}]",
                    bad,
                    f"a numeric column ({e})",
                    "encode it as numbers (e.g. one-hot or ordinal codes) or drop it",
                ) from None
    finite = np.isfinite(out)
    if not finite.all():
        j = int(np.flatnonzero(~finite.all(axis=0))[0])
        k = int((~finite[:, j]).sum())
        raise ConfigError(
            f"{where}[{cols[j]!r}]",
            f"{k} NaN or inf value(s)",
            "finite numbers (no NaN, no inf)",
            "impute or drop those rows first",
        )
    return out, cols


def check_target(y: Any, n: int, task: Task | None = None) -> tuple[np.ndarray, Task]:
    """``y`` as a 1-D array of ``n`` values plus its task (inferred when ``task`` is None)."""
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or len(arr) != n:
        raise ConfigError("y", f"an array of shape {arr.shape}", f"a 1-D target with {n} values (one per row of X)")
    task = task or infer_task(arr)
    if task == "regression":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise ConfigError("y", arr[:3].tolist(), "numeric targets for regression") from None
        if not np.isfinite(arr).all():
            raise ConfigError("y", f"{int((~np.isfinite(arr)).sum())} NaN or inf value(s)", "finite targets")
    elif arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ConfigError("y", "NaN or inf labels", "finite class labels")
    return arr, task


def infer_task(y: np.ndarray) -> Task:
    """``regression`` for a continuous target, else ``classification``: scikit-learn's ``type_of_target``,
    except that a float target with more than 20 distinct values is continuous even when its values are
    whole numbers (the diabetes target is)."""
    from sklearn.utils.multiclass import type_of_target

    if y.dtype.kind == "f" and len(np.unique(y)) > 20:
        return "regression"
    try:
        kind = type_of_target(y)
    except ValueError:
        kind = "unknown"
    return "regression" if kind in ("continuous", "continuous-multioutput") else "classification"
