"""Automatic modeling: a Markov-chain generator over grammars of model-building steps that learns
from results, search spaces (``cnn``, ``sklearn-classifier``, ``sklearn-regressor``, ``nb201``),
strategies (``markov``, ``random``, ``evolution``, ``tpe`` through Optuna), and a logged, resumable search loop.

    from openmindspore.automl import run_search
    result = run_search("nb201", strategy="markov", budget=100, out_dir="runs/nb201", seed=0)
    print(result.best.spec, result.best.metrics)
"""

from openmindspore.automl.chain import ChainConfig, MarkovChain, Step
from openmindspore.automl.grammar import Grammar, GrammarError, build_spec
from openmindspore.automl.records import Trial
from openmindspore.automl.search import SearchResult, load_trials, run_search
from openmindspore.automl.spaces import DEFAULT_DATASETS, SPACES, SearchSpace, make_space
from openmindspore.automl.strategies import STRATEGIES, make_strategy
from openmindspore.automl.tpe import TPESearch  # registers STRATEGIES['tpe']

__all__ = [
    "ChainConfig",
    "MarkovChain",
    "Step",
    "Grammar",
    "GrammarError",
    "build_spec",
    "Trial",
    "SearchResult",
    "load_trials",
    "run_search",
    "DEFAULT_DATASETS",
    "SPACES",
    "SearchSpace",
    "make_space",
    "STRATEGIES",
    "make_strategy",
    "TPESearch",
]
