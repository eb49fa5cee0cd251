"""Offline datasets, the user's own files (npz, csv, image folders, MindRecord, COCO detection) with their
saved preprocessing, and deterministic, resumable sampling."""

from openmindspore.data import detection  # noqa: F401  (registers the detection formats)
from openmindspore.data.datasets import Dataset, DatasetInfo, list_datasets, load_dataset, register_dataset
from openmindspore.data.preprocess import Preprocessor
from openmindspore.data.sampler import ResumableSampler, SamplerState, shard
from openmindspore.data.spec import FORMATS, dataset_key, dataset_label, parse_dataset

__all__ = [
    "Dataset",
    "DatasetInfo",
    "list_datasets",
    "load_dataset",
    "register_dataset",
    "Preprocessor",
    "ResumableSampler",
    "SamplerState",
    "shard",
    "FORMATS",
    "dataset_key",
    "dataset_label",
    "parse_dataset",
]
