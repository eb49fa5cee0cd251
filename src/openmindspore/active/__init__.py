"""Active learning: a learner that knows its limits and asks for the labels it needs.

Learners (:mod:`.learners`), query strategies (:mod:`.strategies`), calibration without extra labels
(:mod:`.calibration`), certified abstention (:mod:`.abstention`), stopping rules (:mod:`.stopping`),
the resumable per-seed loop (:mod:`.loop`) and the driver that runs seeds as engine tasks
(:mod:`.run`). The CLI is ``oms active``; the guide is ``docs/active.md``.
"""

from openmindspore.active.abstention import Certificate, certify
from openmindspore.active.calibration import cross_fit, ece, fit_temperature, temper
from openmindspore.active.config import ActiveConfig, active_config
from openmindspore.active.learners import Learner, make_learner
from openmindspore.active.report import write_report
from openmindspore.active.run import run_active
from openmindspore.active.strategies import STRATEGIES, select
from openmindspore.active.summary import summarize

__all__ = [
    "ActiveConfig",
    "Certificate",
    "Learner",
    "STRATEGIES",
    "active_config",
    "certify",
    "cross_fit",
    "ece",
    "fit_temperature",
    "make_learner",
    "run_active",
    "select",
    "summarize",
    "temper",
    "write_report",
]
