"""The Markov chain's hyper-parameters (:class:`ChainConfig`), checked on construction of the chain; what each
one does is described in :mod:`openmindspore.automl.chain`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from openmindspore.errors import ConfigError

__all__ = ["ChainConfig"]


@dataclass
class ChainConfig:
    """Hyper-parameters of the chain (see module docstring)."""

    epsilon: float = 0.02
    rule: str = "cem"  # cem | naive
    context: str = "none"  # none | prev
    elite_frac: float = 0.2
    min_elite: int = 3
    prior: float = 0.5
    backoff: float = 20.0
    warmup: int = 10
    average_repeats: bool = True
    lr: float = 0.1  # naive rule only
    warm: dict | None = None  # prior table (openmindspore.automl.prior), stored in search.json
    warm_strength: float = 30.0  # pseudo-counts of the prior at full weight
    warm_trust: float = 5.0  # distinct models evaluated before only the agreement sets the prior's weight
    warm_local_after: int = 20  # with a prior, if < local_after: local moves from this trial on (no warmup)
    warm_model: float = 0.0  # with a prior, if > 0: the model-trial share (at least ``model``) ...
    warm_model_after: int = 20  # ... from this trial on (no warmup)
    local: float = 0.7  # fraction of the trials after local_after that move to a neighbour of the incumbent
    local_top: int = 3  # incumbents tried (best first) for an unevaluated neighbour
    local_after: int = 20  # no local move before this many trials (nor before warmup)
    contrast: float = 0.7  # q ~ q_elite * (q_elite / q_rest)^contrast (0: the plain elite estimate)
    model: float = 0.0  # fraction of the non-local trials after model_after proposed by the surrogate
    model_after: int = 20  # no model trial before this many trials (nor before warmup)
    model_candidates: int = 1000  # walks drawn per model trial (before dropping duplicates, evaluated ones)
    model_uniform: float = 0.5  # share of the candidates drawn from the uniform walk instead of the chain
    model_kappa: float = 1.0  # optimism: mean + kappa * sd
    model_clip: float = 0.25  # scores clipped from below at this quantile before the fit (0: off)
    model_acq: str = "ucb"  # acquisition: ucb (mean + model_kappa * sd) | ei (expected improvement)
    restart: int = 0  # trials in the first run; then the chain starts over, each run twice the last (0: never)
    local_pick: str = "mass"  # mass: the moved state by the learned q | model: the neighbour the surrogate scores best
    intensify: float = 0.0  # fraction of the trials from intensify_after on that re-evaluate a best model
    intensify_after: int = 30
    intensify_top: int = 3  # best models (by mean) raced
    intensify_c: float = 0.5  # optimism of the race: mean + c * sd / sqrt(evaluations)

    def check(self, max_choices: int) -> None:
        if self.rule not in ("cem", "naive"):
            raise ConfigError("chain.rule", self.rule, "one of 'cem', 'naive'")
        if self.context not in ("prev", "none"):
            raise ConfigError("chain.context", self.context, "one of 'prev', 'none'")
        if not 0.0 < self.epsilon < 1.0 / max_choices:
            raise ConfigError(
                "chain.epsilon",
                self.epsilon,
                f"0 < epsilon < 1/{max_choices} (the largest state has that many choices)",
                "use e.g. 0.02",
            )
        if not 0.0 < self.elite_frac <= 1.0:
            raise ConfigError("chain.elite_frac", self.elite_frac, "a fraction in (0, 1]")
        if self.min_elite < 1 or self.warmup < 0 or self.prior <= 0 or self.backoff < 0:
            raise ConfigError("chain", asdict(self), "min_elite >= 1, warmup >= 0, prior > 0, backoff >= 0")
        if not 0.0 < self.lr <= 1.0:
            raise ConfigError("chain.lr", self.lr, "a step size in (0, 1]")
        if self.contrast < 0:
            raise ConfigError("chain.contrast", self.contrast, "a power >= 0 (0: off)")
        if not 0.0 <= self.local <= 1.0 or self.local_top < 1 or self.local_after < 0:
            raise ConfigError(
                "chain",
                {"local": self.local, "local_top": self.local_top, "local_after": self.local_after},
                "0 <= local <= 1 (a fraction of the trials), local_top >= 1, local_after >= 0",
            )
        if not (
            0.0 <= self.model <= 1.0
            and self.model_after >= 0
            and self.model_candidates >= 1
            and 0.0 <= self.model_uniform <= 1.0
            and self.model_kappa >= 0.0
            and 0.0 <= self.model_clip < 1.0
            and self.model_acq in ("ucb", "ei")
        ):
            raise ConfigError(
                "chain",
                {k: v for k, v in asdict(self).items() if k.startswith("model")},
                "0 <= model <= 1, model_after >= 0, model_candidates >= 1, 0 <= model_uniform <= 1, "
                "model_kappa >= 0, 0 <= model_clip < 1, model_acq one of 'ucb', 'ei'",
            )
        if self.local_pick not in ("mass", "model"):
            raise ConfigError("chain.local_pick", self.local_pick, "one of 'mass', 'model'")
        i_ok = self.intensify_after >= 0 and self.intensify_top >= 1 and self.intensify_c >= 0
        if not (0.0 <= self.intensify <= 1.0 and i_ok):
            raise ConfigError(
                "chain",
                {k: v for k, v in asdict(self).items() if k.startswith("intensify")},
                "0 <= intensify <= 1 (a fraction of the trials), intensify_after >= 0, intensify_top >= 1, "
                "intensify_c >= 0",
            )
        if self.restart < 0:
            raise ConfigError("chain.restart", self.restart, "trials in the first run >= 0 (0: no restarts)")
        if not (
            self.warm_strength > 0
            and self.warm_trust >= 0
            and self.warm_local_after >= 0
            and 0.0 <= self.warm_model <= 1.0
            and self.warm_model_after >= 0
        ):
            raise ConfigError(
                "chain",
                {k: v for k, v in asdict(self).items() if k.startswith("warm_")},
                "warm_strength > 0, warm_trust >= 0, warm_local_after >= 0, 0 <= warm_model <= 1, "
                "warm_model_after >= 0",
            )
