"""The CEN translation nets: pix2pix U-Net generator (per-modality InstanceNorm) and conditional PatchGAN."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from asymfusion.models import build_discriminator, build_model
from asymfusion.models.norm import ModalityInstanceNorm

from .conftest import tiny_config, tiny_inputs


def _conv(cin: int, cout: int) -> int:
    return 16 * cin * cout + cout  # 4x4 kernel with bias, as every CEN generator/discriminator conv


def test_default_generator_has_the_cen_layers_and_parameter_count() -> None:
    """CEN Generator(3, 64, 3) for two modalities: conv1..conv8, deconv1..deconv8, IN per modality, alpha."""
    config = tiny_config("msbn", task="translation", generator={})
    with torch.device("meta"):
        model = build_model(config)
    enc = [(3, 64), (64, 128), (128, 256), (256, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
    dec = [(512, 512), (1024, 512), (1024, 512), (1024, 512), (1024, 256), (512, 128), (256, 64), (128, 3)]
    enc_norm = [128, 256, 512, 512, 512, 512]  # conv2..conv7
    dec_norm = [512, 512, 512, 512, 256, 128, 64]  # deconv1..deconv7
    expected = sum(_conv(*c) for c in enc + dec) + 2 * sum(2 * c for c in enc_norm + dec_norm) + 2
    assert sum(p.numel() for p in model.parameters()) == expected
    dropouts = [isinstance(level.dropout, nn.Dropout) for level in model.net.decoder.levels]
    assert dropouts == [True, True, True, False, False, False, False, False]
    norms = [m for m in model.modules() if isinstance(m, ModalityInstanceNorm)]
    assert len(norms) == 13 and all(len(n.norms) == 2 and n.norms[0].track_running_stats for n in norms)


def test_default_discriminator_has_the_cen_layers() -> None:
    config = tiny_config("msbn", task="translation", discriminator={})
    with torch.device("meta"):
        d = build_discriminator(config)
    convs = [(6, 64), (64, 128), (128, 256), (256, 512), (512, 1)]
    strides = [m.stride[0] for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert strides == [2, 2, 2, 1, 1]
    assert sum(p.numel() for p in d.parameters()) == sum(_conv(*c) for c in convs) + 2 * (128 + 256 + 512)


def test_discriminator_judges_an_image_given_one_or_every_modality_input() -> None:
    config = tiny_config("asymfusion", task="translation")
    d = build_discriminator(config).eval()
    inputs = tiny_inputs(config)
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    per_rgb = d(inputs, image, modality="rgb")
    assert per_rgb.shape[:2] == (2, 1)
    every = d(inputs, image)
    assert torch.allclose(every, torch.cat([per_rgb, d(inputs, image, modality="depth")]), atol=1e-6)


def test_generator_outputs_are_bounded_images_and_fusion_levels_follow_depth() -> None:
    config = tiny_config("asymfusion", task="translation", generator={"base_channels": 4, "depth": 6})
    model = build_model(config)
    outputs = model(tiny_inputs(config, size=64))
    assert all(o.shape == (2, 3, 64, 64) and o.abs().max() <= 1 for o in outputs.values())
    assert sorted(int(k) for k in model.encoder.fusion) == [2, 3, 4, 5]


def test_input_size_not_divisible_by_the_unet_depth_is_rejected() -> None:
    config = tiny_config("msbn", task="translation")
    with pytest.raises(ValueError, match="divisible by 32"):
        build_model(config)(tiny_inputs(config, size=48))


def test_discriminator_is_for_translation_only() -> None:
    with pytest.raises(ValueError, match="translation"):
        build_discriminator(tiny_config("msbn"))
