"""What a serving process imports: memory every worker pays whether or not a project needs it."""

from __future__ import annotations

from tests.support.peak_memory import run_probe

ONLY_FOR_BRUSHES = "label_studio_sdk.converter"
"""label_studio_sdk's converter (brush RLE) imports nltk and scipy.stats: 75 MB a worker, for brush masks only."""


def test_the_app_loads_the_converter_only_when_a_brush_mask_is_encoded() -> None:
    probe = f"""
import os
os.environ.update(YOLO_OFFLINE="1", MODEL_PATH="absent.pt")
import _wsgi
served = {ONLY_FOR_BRUSHES!r} in sys.modules
from label_studio_yolo.tags.brush import BrushLabelsControl
print(json.dumps({{"served": served, "nltk": "nltk" in sys.modules}}))
"""
    assert run_probe(probe) == {"served": False, "nltk": False}
