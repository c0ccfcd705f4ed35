"""Peak memory of a stack processed in chunks against the same stack in memory.

A uint16 stack of nuclei-like spheres (many crossing chunk borders) is written to a zarr store
chunk by chunk, then segmented by ``segment_file`` (Otsu, chunked connected components joined
across chunk borders, measurements, labels written to zarr) in a fresh subprocess that reports
its peak resident memory (``ru_maxrss``; the baseline is the process after imports and
compiling the kernels on a tiny stack). The same stack is then segmented in memory (numpy,
``count_cells``) in another subprocess. Both must find the same number of objects; the script
prints the peak RSS of each, the working memory above the baseline, and the stack size.

Run: ``python benchmarks/bench_bigger_than_memory.py [--shape 64,2048,2048] [--chunk-mb 16]``
(``--quick`` for a 16x1024x1024 stack). Both runs use ``MALLOC_TRIM_THRESHOLD_=65536`` unless
``--no-trim``: without it glibc keeps what worker threads freed, and the chunked run's RSS is
about twice its live memory.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SETTINGS = {"method": "otsu", "count": {"split_touching": False, "fill_holes": False}}


def make_block(block_info=None, spacing=12, radius=4.5):
    """Spheres on a jittered lattice with noise, from global coordinates (any chunking)."""
    location = block_info[None]["array-location"]
    grids = np.ogrid[tuple(slice(a, b) for a, b in location)]
    d2 = 0.0
    for axis, g in enumerate(grids):
        cell = g // spacing
        jitter = ((cell * 7919 + axis * 104729) % 97) / 97.0 * 4.0 - 2.0
        d2 = d2 + (g - (cell * spacing + spacing / 2 + jitter)) ** 2
    rng = np.random.default_rng([a for a, _ in location])
    noise = rng.integers(0, 400, d2.shape, dtype=np.uint16)
    return (1000 + noise + 1500 * (d2 <= radius**2)).astype(np.uint16)


def write_stack(path, shape):
    import dask.array as da

    from napari_binseg.io import write_zarr

    chunks = (16, 512, 512)[-len(shape) :]
    stack = da.map_blocks(make_block, dtype=np.uint16, chunks=da.core.normalize_chunks(
        chunks, shape))  # fmt: skip
    write_zarr(path, stack, scale=(2.0, 0.5, 0.5), units="µm")


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def child(mode, source, out, chunk_mb):
    """Segment in this (fresh) process; print a JSON line with time and memory."""
    from napari_binseg import pipeline

    settings = pipeline.PipelineSettings.from_dict(SETTINGS)
    # The baseline holds the imports and the compiled histogram kernels (numba), not data.
    pipeline.run_pipeline(make_block({None: {"array-location": [(0, 8), (0, 64), (0, 64)]}}),
                          settings)  # fmt: skip
    baseline = peak_rss_mb()
    start = time.perf_counter()
    if mode == "chunked":
        table, _ = pipeline.segment_file(
            source, out, settings, max_memory=0, chunk_bytes=int(chunk_mb * 2**20)
        )
    else:
        data, meta = pipeline.open_image(source)
        _, table = pipeline.run_pipeline(data.compute(), settings, spacing=meta["scale"])
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_mb": peak_rss_mb(), "baseline_mb": baseline,
                      "objects": len(table)}))  # fmt: skip


def run_child(mode, source, out, chunk_mb, trim):
    cmd = [sys.executable, __file__, "--child", mode, str(source), str(out), str(chunk_mb)]
    # glibc keeps memory freed by worker threads unless told to return it; dask.distributed's
    # nanny sets the same variable for its workers.
    env = dict(os.environ, MALLOC_TRIM_THRESHOLD_="65536") if trim else None
    result = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="64,2048,2048")
    parser.add_argument("--chunk-mb", type=float, default=16)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-numpy", action="store_true", help="only the chunked run")
    parser.add_argument(
        "--no-trim", action="store_true", help="run without MALLOC_TRIM_THRESHOLD_=65536"
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, source, out, chunk_mb = args.child
        return child(mode, source, out, float(chunk_mb))

    shape = (16, 1024, 1024) if args.quick else tuple(int(s) for s in args.shape.split(","))
    stack_mb = np.prod(shape) * 2 / 2**20
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "stack.zarr"
        write_stack(source, shape)
        print(f"stack {shape} uint16: {stack_mb:.0f} MB (labels int32: {2 * stack_mb:.0f} MB)")
        trim = not args.no_trim
        chunked = run_child("chunked", source, Path(tmp) / "out", args.chunk_mb, trim)
        rows = [("chunked (zarr in/out)", chunked)]
        if not args.skip_numpy:
            rows.append(
                ("in memory (numpy)", run_child("numpy", source, tmp, args.chunk_mb, trim))
            )
    print(f"chunks of about {args.chunk_mb:g} MB of input; MALLOC_TRIM_THRESHOLD_: {trim}")
    print(f"{'':24}{'time s':>8}{'peak RSS MB':>13}{'above baseline MB':>19}{'objects':>9}")
    for name, r in rows:
        work = r["peak_mb"] - r["baseline_mb"]
        print(f"{name:24}{r['seconds']:8.1f}{r['peak_mb']:13.0f}{work:19.0f}{r['objects']:9d}")
    print(f"stack / chunked peak RSS: {stack_mb / chunked['peak_mb']:.1f}x")
    if len(rows) == 2:
        numpy = rows[1][1]
        print(f"peak RSS in memory / chunked: {numpy['peak_mb'] / chunked['peak_mb']:.1f}x; "
              f"time chunked / in memory: {chunked['seconds'] / numpy['seconds']:.2f}x; "
              f"same object count: {numpy['objects'] == chunked['objects']}")  # fmt: skip


if __name__ == "__main__":
    main()
