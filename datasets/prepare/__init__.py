"""Turning fetched raw datasets into the on-disk layouts of docs/design.md §7 (`asymfusion prepare SOURCE`).

* `prepare_nyudv2`: the labeled .mat (MATLAB v7.3) + official split + 894->40 mapping -> segmentation layout.
* `prepare_cityscapes`: leftImg8bit + gtFine labelIds + disparity + camera -> segmentation layout (19 train ids).
* `prepare_taskonomy`: the sample building's per-domain PNGs + CEN's lists -> translation layout (files unchanged).
"""

from __future__ import annotations

from asymfusion.datasets.prepare.cityscapes import prepare_cityscapes
from asymfusion.datasets.prepare.nyudv2 import prepare_nyudv2
from asymfusion.datasets.prepare.taskonomy import prepare_taskonomy

__all__ = ["prepare_cityscapes", "prepare_nyudv2", "prepare_taskonomy"]
