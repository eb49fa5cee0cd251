"""Offline datasets and deterministic, resumable sampling."""

from openmindspore.data.datasets import Dataset, DatasetInfo, list_datasets, load_dataset, register_dataset
from openmindspore.data.sampler import ResumableSampler, SamplerState, shard

__all__ = [
    "Dataset",
    "DatasetInfo",
    "list_datasets",
    "load_dataset",
    "register_dataset",
    "ResumableSampler",
    "SamplerState",
    "shard",
]
