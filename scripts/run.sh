#!/usr/bin/env bash
# Set up and run the main job: napari with the plugin and a sample loaded, or, on a machine
# without a display, a headless demo that writes its outputs to demo_output/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh all
# Without a display, napari_binseg.demo says so and runs the headless demo.
exec "${PYTHON:-python3}" -m napari_binseg.cli demo --out demo_output "$@"
