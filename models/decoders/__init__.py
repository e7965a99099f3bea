"""Task decoders: the RefineNet of the official AsymFusion/CEN code, and DeepLabv3+ (the paper's Cityscapes one)."""

from .deeplabv3plus import DeepLabV3PlusDecoder
from .refinenet import RefineNetDecoder

__all__ = ["DeepLabV3PlusDecoder", "RefineNetDecoder"]
