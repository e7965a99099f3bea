"""Task decoders; the segmentation one is the RefineNet of the official AsymFusion/CEN code."""

from .refinenet import RefineNetDecoder

__all__ = ["RefineNetDecoder"]
