"""``napari-binseg demo``: the sample in napari, or the headless demo."""


def run(args):
    from ..demo import main as demo_main

    return demo_main(args.out, headless=True if args.headless else None)


def add(subparsers):
    p = subparsers.add_parser(
        "demo",
        help="open napari with a sample and the widgets, or run the headless demo",
        description=(
            "With a display: open napari with the 2D nuclei sample and the plugin's widgets "
            "docked. Without one (or with --headless): threshold, count, segment with the "
            "bundled U-Net and evaluate the sample, writing labels, tables and scores to --out."
        ),
    )
    p.add_argument("--out", default="demo_output", help="output folder of the headless demo")
    p.add_argument("--headless", action="store_true", help="never open a window")
    p.set_defaults(func=run)
