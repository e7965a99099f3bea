"""Procedural multimodal indoor scenes: the quick suite's data and every test's.

`render_dataset` writes both on-disk layouts (segmentation and Taskonomy-style translation, docs/design.md §7);
`render_view` returns one view's modalities as arrays. See docs/synthetic-data.md for the scene model.
"""

from asymfusion.datasets.synthetic.render import (
    EDGE_OCCLUSION_SCALE,
    EDGE_TEXTURE_SCALE,
    RENDERER_VERSION,
    encode_translation,
    intrinsics,
    render_dataset,
    render_view,
)
from asymfusion.datasets.synthetic.scene import (
    APPEARANCE_ONLY_PAIRS,
    CLASS_FAMILY,
    GEOMETRY_ONLY_PAIRS,
    SYNTHETIC_CLASSES,
    SYNTHETIC_PALETTE,
    Scene,
    sample_camera,
    sample_scene,
)

__all__ = [
    "APPEARANCE_ONLY_PAIRS",
    "CLASS_FAMILY",
    "EDGE_OCCLUSION_SCALE",
    "EDGE_TEXTURE_SCALE",
    "GEOMETRY_ONLY_PAIRS",
    "RENDERER_VERSION",
    "SYNTHETIC_CLASSES",
    "SYNTHETIC_PALETTE",
    "Scene",
    "encode_translation",
    "intrinsics",
    "render_dataset",
    "render_view",
    "sample_camera",
    "sample_scene",
]
