"""The ways a control tag can use the vision-language stage: its ``vlm`` attribute and the ``VLM_MODE`` setting.

(Constants only: the settings import them, and the Docker health check imports the settings.)
"""

from __future__ import annotations

VLM_ATTR = "vlm"
"""Control-tag attribute choosing the vision-language stage: ``zero-shot``, ``refine`` or ``off`` (else VLM_MODE)."""

VLM_ZERO_SHOT, VLM_REFINE, VLM_OFF, VLM_AUTO = "zero-shot", "refine", "off", "auto"

VLM_TAG_MODES = (VLM_ZERO_SHOT, VLM_REFINE, VLM_OFF)
"""Values of the ``vlm`` attribute."""

VLM_SETTING_MODES = (VLM_AUTO, *VLM_TAG_MODES)
"""Values of the ``VLM_MODE`` setting: ``auto`` fills zero-shot the boxes of a control no YOLO class maps to."""
