"""Train or fine-tune the nuclei U-Net on annotated images (``napari_binseg.train``).

Modules, read top-down:

- :mod:`.config`: :class:`TrainConfig` (the options of
  :class:`napari_binseg.options.TrainOptions`) and the network presets.
- :mod:`.data`: annotated planes of (image, labels) pairs and their checks, reading pairs
  from folders, foreground/centre targets, the augmented crop :class:`~.data.Sampler`.
- :mod:`.loop`: losses, the optimizer loop (:func:`~.loop.fit`) and validation through the
  inference path of :func:`napari_binseg.segment`.
- :mod:`.checkpoint`: resumable checkpoints (safetensors and JSON, no pickle).
- :mod:`.card`: the model card writer.
- :mod:`.api`: :func:`train` and :func:`export_bundle` (MONAI bundle).

The result of :func:`train` is a folder :func:`napari_binseg.load_model` reads
(``model.safetensors``, ``config.json``, ``MODEL_CARD.md``). The reproduction of the bundled
model on DSB 2018 is ``scripts/train_bundled.py`` in the repository, built on this API.
Importing this package does not import torch or monai.
"""

from .api import StartingModelKept, TrainingDiverged, export_bundle, train
from .card import model_card
from .config import ARCHITECTURES, TrainConfig
from .data import AUGMENTATIONS, annotated_planes, read_pairs
from .loop import LOSSES

__all__ = [
    "ARCHITECTURES",
    "AUGMENTATIONS",
    "LOSSES",
    "StartingModelKept",
    "TrainConfig",
    "TrainingDiverged",
    "annotated_planes",
    "export_bundle",
    "model_card",
    "read_pairs",
    "train",
]
