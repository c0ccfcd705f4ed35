"""MONAI U-Net for nuclei: safe model loading, inference (predict/segment), training.

Importing this package does not import torch or monai; they load when a model is used.
"""

from importlib import import_module

_API = {
    "predict": "inference",
    "predict_channels": "inference",
    "segment": "inference",
    "load_model": "network",
    "LoadedModel": "network",
}

__all__ = sorted(_API)


def __getattr__(name):
    if name in _API:
        value = getattr(import_module(f".{_API[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
