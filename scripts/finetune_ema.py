"""Fine-tune the bundled nuclei U-Net on DSB 2018 plus s-bsst265, keeping a moving average.

Not part of the installed package: the research script that made the bundled weights of
session 7 (issue 13). Same data as ``scripts/finetune_multisource.py`` (DSB 2018 training
images, small nuclei upsampled as ``segment(diameter="auto")`` does; the even rows of
s-bsst265-train's ``index.csv`` at 0.8, 1 and 1.25 times the reference diameter; its odd rows
and the DSB validation split are never trained on) and the same sampler, loss and schedule as
:func:`napari_binseg.train` (AdamW, warm-up then cosine decay), with two differences:

- the weights kept are an exponential moving average of the trained ones (BatchNorm
  statistics included; decay ``--ema``), which on 2 CPU cores moved steadily where the raw
  weights' validation F1 swung by 0.02-0.07 between epochs (``finetune_multisource.py``);
- nothing is chosen by validation: the run's last average is the result, so the DSB
  validation split and the held-out s-bsst265 rows stay unbiased for the comparison with the
  weights it started from (``benchmarks/eval_unet_sources.py --candidate OUT`` and
  ``benchmarks/bench_scale_sweep.py --full --model OUT``).

Run (CPU, one thread; ~30 min on a quiet core)::

    python scripts/finetune_ema.py --init PREVIOUS --out RUN

``--init`` defaults to the bundled model; the shipped weights started from the bundled weights
before them (``git show ecbebab:src/napari_binseg/models/nuclei/...`` into a folder).

``--snapshots N`` also writes the average every N steps (``RUN/ema_<step>``) to follow the
run. The model folder written (``model.safetensors``, ``config.json``) keeps the starting
model's configuration and records the run in its ``training`` section.
"""

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
from finetune_multisource import (
    BSST_HELD_OUT,
    BSST_TRAIN,
    DATA,
    REFERENCE,
    bsst_training,
    check_split,
    dsb_parts,
    rescaled,
)
from train_bundled import load_folder


def dsb_small(folder, val_names, factors, every):
    """Every ``every``-th DSB training image shrunk by ``factors`` (in turn) and upsampled
    again as ``segment(diameter="auto")`` would: the blurred small nuclei of low
    magnifications, which fine-tuning on large nuclei alone unlearned. (images, labels)"""
    from napari_binseg.unet.scale import MAX_SCALE
    from napari_binseg.unet.training.data import upsample_to

    train = [(image, lab) for name, image, lab in load_folder(folder) if name not in val_names]
    images, labels = [], []
    for i, (image, lab) in enumerate(train[::every]):
        small = rescaled(image.astype(np.float32), lab, factors[i % len(factors)])
        image, lab = upsample_to(*small, {"diameter": REFERENCE, "max_scale": MAX_SCALE})
        images.append(image)
        labels.append(lab)
    return images, labels


def write_model(net, config, folder):
    """``net``'s weights and ``config`` as a model folder (safetensors, no pickle)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()}
    save_file(state, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--init", default="nuclei", help="model whose weights start the run")
    p.add_argument("--out", type=Path, required=True, help="model folder to write")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--minutes", type=float, default=80.0, help="stops earlier on slow machines")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--ema", type=float, default=0.998, help="decay of the moving average")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--seed", type=int, default=0, help="of the crops and augmentations")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--snapshots", type=int, default=0, help="write the average every N steps")
    p.add_argument("--dsb-small", default="", help="sizes of shrunk DSB copies, e.g. 0.25,0.4")
    p.add_argument("--dsb-small-every", type=int, default=2, help="for every N-th DSB image")
    a = p.parse_args(argv)

    import torch

    import napari_binseg as nb
    from napari_binseg.unet.network import _load_state, build_network
    from napari_binseg.unet.normalize import normalize_plane
    from napari_binseg.unet.training.config import TrainConfig
    from napari_binseg.unet.training.data import Sampler, make_targets
    from napari_binseg.unet.training.loop import fit, loss_fn

    def log(msg):
        print(time.strftime("%H:%M:%S"), msg, flush=True)

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    check_split(a.data / "s-bsst265-train")
    lm = nb.load_model(a.init, device="cpu")
    folder = Path(lm.path) if Path(lm.path).is_dir() else Path(lm.path).parent
    config = json.loads((folder / "config.json").read_text())
    val_names = set(config["training"]["validation_names"])
    parts = dsb_parts(a.data / "dsb2018-train", val_names)
    b_names, b_images, b_labels = bsst_training(a.data / "s-bsst265-train", log)
    images = parts["train"][1] + b_images
    labels = parts["train"][2] + b_labels
    if a.dsb_small:
        factors = [float(k) for k in a.dsb_small.split(",")]
        s_images, s_labels = dsb_small(
            a.data / "dsb2018-train", val_names, factors, a.dsb_small_every
        )
        images, labels = images + s_images, labels + s_labels
        log(f"{len(s_images)} shrunk DSB copies at {factors}")
    norm = config["normalization"]
    sampler = Sampler(
        [normalize_plane(im, norm) for im in images],
        [make_targets(lab) for lab in labels],
        crop=a.crop,
        seed=a.seed,
        augment=TrainConfig().augment,
    )
    net = build_network(config["network"])
    net.load_state_dict(_load_state(folder / "model.safetensors"))
    net = net.float().train()
    average = copy.deepcopy(net).eval()
    for param in average.parameters():
        param.requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=1e-4)
    log(f"{len(images)} training planes ({len(b_names)} s-bsst265); {a.steps} steps")

    training = {
        "init": str(a.init),
        "recipe": "finetune_ema",
        "data": (
            "DSB 2018 stage1_train fluorescence (BBBC038, corrected copy; CC0), the training "
            "part of the split below + s-bsst265 training half (Kromp et al. 2020, even rows "
            "of index.csv; CC0) at 0.8/1/1.25x the reference diameter"
            + (
                f"; one DSB training image in {a.dsb_small_every} also shrunk by "
                f"{a.dsb_small.replace(',', ' or ')} (in turn) and upsampled as segment() would"
                if a.dsb_small
                else ""
            )
        ),
        "validation_names": sorted(val_names),
        "bsst265_train": list(BSST_TRAIN),
        "bsst265_held_out": list(BSST_HELD_OUT),
        "steps_planned": a.steps,
        "lr": a.lr,
        "ema": a.ema,
        "batch_size": a.batch_size,
        "crop": a.crop,
        "seed": a.seed,
        "command": " ".join(["python scripts/finetune_ema.py", *sys.argv[1:]]),
        "previous": config["training"],
    }
    t0, losses, step = time.time(), [], 0
    for step, value in fit(
        net,
        opt,
        sampler,
        steps=a.steps,
        lr=a.lr,
        batch_size=a.batch_size,
        device="cpu",
        loss=loss_fn,
        deadline=t0 + 60 * a.minutes,
    ):
        losses.append(value)
        with torch.no_grad():
            pairs = zip(average.state_dict().values(), net.state_dict().values(), strict=True)
            for kept, new in pairs:
                if kept.dtype.is_floating_point:
                    kept.mul_(a.ema).add_(new, alpha=1 - a.ema)
                else:
                    kept.copy_(new)
        if a.snapshots and step % a.snapshots == 0:
            write_model(average, config, a.out / f"ema_{step}")
            log(f"step {step}: loss {np.mean(losses[-a.snapshots :]):.4f}")
    training |= {"steps_done": step, "minutes": round((time.time() - t0) / 60, 1)}
    write_model(average, config | {"training": training}, a.out)
    log(f"done: {step} steps in {training['minutes']} min -> {a.out}")


if __name__ == "__main__":
    main()
