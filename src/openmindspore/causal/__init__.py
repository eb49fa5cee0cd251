"""Causal effects of modeling choices: "is max-pooling necessary?" with an effect and a 95% CI.

* :mod:`~openmindspore.causal.treatments`: binary predicates on model specs (named or expressions);
* :mod:`~openmindspore.causal.estimators`: naive, Hájek (normalised IPW) and AIPW (doubly robust)
  estimators with influence-function (plain or variance-floored) or bootstrap CIs, effective sample
  size, positivity checks;
* :mod:`~openmindspore.causal.refute`: sensitivity checks (placebo treatment, random common cause);
* :mod:`~openmindspore.causal.searchlog`: treatment propensities from automl search logs;
* :mod:`~openmindspore.causal.effects`: ``estimate_effects(search_dir, treatment)`` (``oms effects``);
* :mod:`~openmindspore.causal.ablation`: randomized factorial ablations with real training (``oms ablate``).

    from openmindspore.causal import estimate_effects
    res = estimate_effects("runs/nb201", "skip")
    print(res.answer)
"""

from openmindspore.causal.effects import EffectsResult, answer_sentence, estimate_effects
from openmindspore.causal.estimators import ESTIMATORS, EffectData, Estimate, check_positivity, estimate, kish_ess
from openmindspore.causal.factors import FACTORS, Factor, apply_levels, get_factor
from openmindspore.causal.refute import placebo_check, random_common_cause_check
from openmindspore.causal.treatments import NAMED, Treatment, get_treatment, parse_treatment

__all__ = [
    "EffectsResult",
    "answer_sentence",
    "estimate_effects",
    "ESTIMATORS",
    "EffectData",
    "Estimate",
    "check_positivity",
    "estimate",
    "kish_ess",
    "FACTORS",
    "Factor",
    "apply_levels",
    "get_factor",
    "NAMED",
    "Treatment",
    "get_treatment",
    "parse_treatment",
    "placebo_check",
    "random_common_cause_check",
]
