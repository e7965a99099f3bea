"""Image-to-image translation nets of the CEN protocol: pix2pix U-Net generator and conditional PatchGAN."""

from .patchgan import PatchDiscriminator
from .unet import UNetDecoder, UNetEncoder

__all__ = ["UNetEncoder", "UNetDecoder", "PatchDiscriminator"]
