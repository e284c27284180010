"""``python -m label_studio_yolo``: the same command line as ``label-studio-yolo``."""

import sys

from label_studio_yolo.cli import main

sys.exit(main())
