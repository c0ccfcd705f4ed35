"""U-Net on a z-stack: plane by plane against the fast and accurate 3D modes.

Each run (plane by plane ``segment(axes="TYX")`` with the default ``diameter="auto"`` and
with one pass per plane, ``diameter=None``; ``mode="fast"``; ``mode="accurate"``) goes in its
own process on the same synthetic anisotropic stack (``synthetic_stack``, dense touching
nuclei, z step 2x the pixel), after a warm-up call (model load, OpenVINO conversion). Printed:
wall and CPU seconds (CPU time is steadier on a shared machine), ratios to plane by plane
(default), peak resident memory above the process's peak
before the call (input, model and warm-up) and in all, object F1 at IoU 0.5 and the count
error against the exact labels.

    python benchmarks/bench_3d.py                       # 64x512x512, spacing (2, 1, 1)
    python benchmarks/bench_3d.py --shape 32x256x256    # smaller, a few seconds a run

Targets (issue 14): fast <= 1.3x and accurate <= 4x the plane-by-plane time.
"""

import argparse
import json
import resource
import subprocess
import sys
import time

RUNS = ("planes", "planes_1pass", "fast", "accurate")


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(run, shape, spacing, seed, device, model="nuclei"):
    import numpy as np

    import napari_binseg as nb
    from napari_binseg.unet import load_model, segment

    image, truth = nb.synthetic_stack(shape, spacing=spacing, seed=seed)
    lm = load_model(model, device=device)
    segment(image[len(image) // 2, :128, :128], lm)  # warm-up: conversion, kernels
    kw = {
        "planes": {"axes": "TYX"},  # the default diameter="auto", per plane
        "planes_1pass": {"axes": "TYX", "diameter": None},  # one pass per plane, no resizing
    }.get(run, {"mode": run, "spacing": spacing})
    before = _rss_mb()
    t, cpu = time.perf_counter(), _cpu_s()
    labels = segment(image, lm, **kw)
    seconds, cpu = time.perf_counter() - t, _cpu_s() - cpu
    peak = _rss_mb() - before
    row = nb.evaluate(truth, labels, thresholds=[0.5]).iloc[0]
    n_true, n_pred = int(row["n_true"]), int(row["n_pred"])
    print(
        json.dumps(
            {
                "run": run,
                "seconds": seconds,
                "cpu_seconds": cpu,
                "peak_mb": peak,
                "peak_total_mb": _rss_mb(),
                "input_mb": image.nbytes / 2**20,
                "f1": float(row["f1"]),
                "n_true": n_true,
                "n_pred": n_pred,
                "count_error": (n_pred - n_true) / max(n_true, 1),
                "objects_spanning_planes": int(
                    np.count_nonzero(np.bincount(labels[1:][labels[1:] == labels[:-1]]))
                ),
            }
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="64x512x512")
    parser.add_argument("--spacing", default="2,1,1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="nuclei", help="model name or folder")
    parser.add_argument("--child", choices=RUNS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = tuple(int(s) for s in args.shape.lower().split("x"))
    spacing = tuple(float(s) for s in args.spacing.split(","))
    if args.child:
        child(args.child, shape, spacing, args.seed, args.device, args.model)
        return
    results = {}
    for run in RUNS:
        out = subprocess.run(
            [sys.executable, __file__, "--child", run, "--shape", args.shape,
             "--spacing", args.spacing, "--seed", str(args.seed), "--device", args.device,
             "--model", args.model],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        results[run] = json.loads(out.stdout.strip().splitlines()[-1])
    base = results["planes"]["seconds"]
    base_cpu = results["planes"]["cpu_seconds"]
    print(f"stack {args.shape} spacing {spacing} seed {args.seed} device {args.device}")
    print(
        f"{'run':12s} {'s':>8s} {'ratio':>6s} {'cpu s':>7s} {'ratio':>6s} {'+peak MB':>8s} "
        f"{'peak MB':>8s} {'F1@0.5':>7s} "
        f"{'count':>12s}"
    )
    for run, r in results.items():
        print(
            f"{run:12s} {r['seconds']:8.2f} {r['seconds'] / base:6.2f} {r['cpu_seconds']:7.1f} "
            f"{r['cpu_seconds'] / base_cpu:6.2f} {r['peak_mb']:8.0f} "
            f"{r['peak_total_mb']:8.0f} "
            f"{r['f1']:7.3f} {r['n_pred']:5d}/{r['n_true']:<5d} ({100 * r['count_error']:+.1f}%)"
        )
    print(f"input {results['planes']['input_mb']:.0f} MB")


if __name__ == "__main__":
    main()
