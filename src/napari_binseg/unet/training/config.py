"""The options of a training run (:class:`TrainConfig`) and the network presets they name."""

import dataclasses

from ...options import TrainOptions

#: Network presets: MONAI classes with literal arguments (2D, one input, two sigmoid outputs).
#: Their names are :data:`napari_binseg.options.ARCHITECTURES`.
ARCHITECTURES = {
    "mobile": {"name": "UNet", "kwargs": {"channels": [8, 16, 32, 64], "strides": [2, 2, 2]}},
    "compact": {"name": "UNet", "kwargs": {"channels": [16, 32, 64, 128], "strides": [2, 2, 2]}},
    "default": {
        "name": "UNet",
        "kwargs": {"channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2]},
    },
    "large": {
        "name": "UNet",
        "kwargs": {
            "channels": [32, 64, 128, 256, 512],
            "strides": [2, 2, 2, 2],
            "num_res_units": 2,
        },
    },
    "efficientnet-b0": {
        "name": "FlexibleUNet",
        "kwargs": {"backbone": "efficientnet-b0", "pretrained": False},
    },
}
_UNET_DEFAULTS = {"num_res_units": 0, "norm": "batch", "act": "relu"}


@dataclasses.dataclass(frozen=True)
class TrainConfig(TrainOptions):
    """Options of a training run; JSON-serializable (:meth:`to_dict`, :meth:`from_dict`).

    The fields, their defaults, ranges and help are those of
    :class:`napari_binseg.options.TrainOptions` (checked when the config is built):

    Parameters
    ----------
    init : str or None
        Model whose weights start the run: ``"nuclei"`` (the bundled model, fine-tuning) or a
        model folder; None trains from scratch.
    architecture : str or dict or None
        A preset of :data:`ARCHITECTURES` (``"mobile"``, ``"compact"``, ``"default"``,
        ``"large"``, ``"efficientnet-b0"``) or a ``{"name", "kwargs"}`` MONAI network dict.
        None: the network of ``init``, else ``"default"``. Must match ``init`` when both given.
    loss : {"dice+ce", "dice", "ce", "focal"}
    epochs, steps_per_epoch : int
        Validation (and a checkpoint) after every epoch of ``steps_per_epoch`` batches.
    minutes : float or None
        Time budget from the start, a fine-tune's validation of its starting model included:
        training stops at it (the learning-rate schedule then follows time); a budget spent
        before the first training step is an error.
    lr : float
        Peak learning rate of AdamW (warm-up, then cosine decay).
    patch_size, batch_size : int
        Square training crops, a multiple of the network's divisor (the product of a UNet's
        strides: 8 for mobile and compact, 16 for default and large; 32 for efficientnet-b0).
    augment : tuple of str
        Subset of :data:`napari_binseg.options.AUGMENTATIONS`.
    val_fraction : float
        Share of the annotated planes held out for validation (when no validation pair is
        given). With a single plane, validation uses the training plane.
    device : {"auto", "cpu", "cuda", "mps"}
    seed : int
    threads : int or None
        torch CPU threads (None leaves torch's setting).

    Examples
    --------
    >>> TrainConfig(epochs=2).steps
    50
    >>> TrainConfig(epochs=0)
    Traceback (most recent call last):
    ...
    ValueError: train.epochs must be a positive integer, got 0
    """

    def validate(self):
        """Check every option again (a config is checked when built); ValueError if bad."""
        self.__post_init__()

    @property
    def steps(self):
        """Total number of optimizer steps."""
        return self.epochs * self.steps_per_epoch


def network_of(config, init_config):
    """The ``{"name", "kwargs"}`` network of a run: the preset, the init model's, or given."""
    arch = config.architecture
    if arch is None:
        return init_config["network"] if init_config else network_from_preset("default")
    network = network_from_preset(arch) if isinstance(arch, str) else arch
    if init_config and network != init_config["network"]:
        raise ValueError(
            f"architecture {arch!r} differs from the network of init={config.init!r} "
            f"({init_config['network']}); leave architecture unset to fine-tune, or set "
            "init=None to train from scratch"
        )
    return network


def network_from_preset(name):
    """The full ``{"name", "kwargs"}`` network dict of an :data:`ARCHITECTURES` preset."""
    preset = ARCHITECTURES[name]
    base = {"spatial_dims": 2, "in_channels": 1, "out_channels": 2}
    extra = _UNET_DEFAULTS if preset["name"] == "UNet" else {}
    return {"name": preset["name"], "kwargs": base | extra | preset["kwargs"]}
