"""``python -m napari_binseg.cli``: the ``napari-binseg`` command."""

import sys

from . import main

sys.exit(main())
