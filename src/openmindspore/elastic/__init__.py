"""Elastic, fault-tolerant data-parallel training on the engine (MindSpore collectives)."""
from openmindspore.elastic.driver import ElasticTrainer
from openmindspore.elastic.options import ElasticOptions, Fault, parse_fault, valid_world_sizes

__all__ = ["ElasticTrainer", "ElasticOptions", "Fault", "parse_fault", "valid_world_sizes"]
