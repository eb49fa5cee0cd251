"""The three benchmark columns ``--inject`` adds: owns how they are generated and what they are named.

* ``injected_noise``: pure noise, N(0, 1);
* ``injected_copy``: a noisy copy of the source column, ``x_k + 0.5 sd(x_k) e``;
* ``injected_proxy``: a nonlinear proxy, ``tanh(z_k) + 0.3 sd(tanh(z_k)) e`` with ``z_k`` the standardised
  source, predictive of the target only through ``x_k``.

The source ``k`` is the most important feature (largest marginal importance, chosen by the caller). The
noise is keyed by ``seed`` so a benchmark seed varies it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Injection", "inject_columns", "INJECTED"]

INJECTED = ("injected_noise", "injected_copy", "injected_proxy")


@dataclass
class Injection:
    """Where the columns went: ``info[name] = {"type": noise|copy|proxy, "source": name or None}``."""

    source: str
    info: dict[str, dict[str, str | None]] = field(default_factory=dict)

    def expected_status(self, name: str) -> str | None:
        """``dropped`` for the noise, ``proxy_of:SOURCE`` for the copy and the proxy; None otherwise."""
        i = self.info.get(name)
        if i is None:
            return None
        return "dropped" if i["source"] is None else f"proxy_of:{i['source']}"


def inject_columns(X: np.ndarray, names: list[str], source: int, seed: int) -> tuple[np.ndarray, list[str], Injection]:
    """``X`` with the three columns appended (rows keep their order; ``X`` may stack several splits)."""
    rng = np.random.default_rng([seed, 2718281])
    n = len(X)
    xk = X[:, source]
    sd = float(xk.std()) or 1.0
    z = (xk - xk.mean()) / sd
    g = np.tanh(z)
    cols = [
        rng.standard_normal(n),
        xk + 0.5 * sd * rng.standard_normal(n),
        g + 0.3 * float(g.std() or 1.0) * rng.standard_normal(n),
    ]
    inj = Injection(names[source])
    for name, kind in zip(INJECTED, ("noise", "copy", "proxy")):
        inj.info[name] = {"type": kind, "source": None if kind == "noise" else names[source]}
    return np.column_stack([X, *cols]), [*names, *INJECTED], inj
