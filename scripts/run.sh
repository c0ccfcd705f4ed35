#!/usr/bin/env bash
# Set up and run the main job: napari with the plugin and a sample loaded, or, on a machine
# without a display, a headless demo that writes its outputs to demo_output/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh all
if [[ "$(uname)" == "Linux" && -z "${DISPLAY:-}" && -z "${WAYLAND_DISPLAY:-}" ]]; then
    echo "run.sh: no display (DISPLAY and WAYLAND_DISPLAY are unset): running the headless" \
        "demo instead of napari; outputs go to demo_output/." >&2
fi
exec "${PYTHON:-python3}" -m napari_binseg.cli demo --out demo_output "$@"
