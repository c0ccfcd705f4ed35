#!/usr/bin/env bash
# Set up and run the whole test suite (the viewer tests run on a virtual display, pytest-xvfb).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh testing
exec "${PYTHON:-python3}" -m pytest tests "$@"
