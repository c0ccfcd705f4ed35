#!/usr/bin/env bash
# Install napari-binseg and everything it needs on a fresh Debian machine (or a user's Linux box).
# Usage: bash scripts/install.sh [EXTRA]   (EXTRA: "testing" (default) or "all")
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-testing}"
python="${PYTHON:-python3}"

# The viewer needs a display server and OpenGL; CI and headless machines get a virtual one.
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        xvfb xauth libgl1-mesa-dri libegl1 libfontconfig1 libxkbcommon0 libxkbcommon-x11-0 \
        libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 \
        libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libdbus-1-3 >/dev/null
fi

# torch first, so the plugin's "torch>=2.2" is already met. On PyPI the Linux wheel depends on
# the CUDA toolkit (several GB); PyTorch's CPU-only wheels come from its own index, e.g.
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/install.sh
# (this project's CI machines have a local CPU build of torch 2.13.0 on their package index).
"$python" -m pip install -q --disable-pip-version-check "torch==2.13.0" \
    ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
"$python" -m pip install -q --disable-pip-version-check -e ".[$extra]"
