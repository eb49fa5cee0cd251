"""OpenMindSpore: scalable, fault-tolerant, self-improving training and serving on MindSpore."""

__version__ = "0.1.0"
