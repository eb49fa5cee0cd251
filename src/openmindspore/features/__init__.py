"""Intervention-based feature engineering for tabular data: importance, selection, construction, proxies.

    from openmindspore.features import intervention_importance, InterventionSelector
    imp = intervention_importance("random_forest", X, y, kind="conditional", repeats=5)
    print(imp.rank(), imp.mean, imp.ci)
    X_sel = InterventionSelector(random_state=0).fit_transform(X, y)

Importing this package registers the ``intervention`` feature step of ``sklearn-*`` pipeline specs.
It uses ``models`` (and ``train`` for an ``mlp`` run directory); it never imports ``automl``.
"""

from openmindspore.features.construct import Candidate, FeatureConstructor, candidates
from openmindspore.features.importance import Importance, importances, intervention_importance
from openmindspore.features.inject import Injection, inject_columns
from openmindspore.features.interventions import ConditionalSampler, SamplerOptions, intervene
from openmindspore.features.proxies import measure_set, name_proxies
from openmindspore.features.selection import eliminate, intervention_elimination
from openmindspore.features.selector import InterventionSelector

__all__ = [
    "Candidate",
    "FeatureConstructor",
    "candidates",
    "Importance",
    "importances",
    "intervention_importance",
    "Injection",
    "inject_columns",
    "ConditionalSampler",
    "SamplerOptions",
    "intervene",
    "measure_set",
    "name_proxies",
    "eliminate",
    "intervention_elimination",
    "InterventionSelector",
]
