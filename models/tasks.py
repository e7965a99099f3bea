"""What each task means to the model code: the encoder and decoder a task's models use, the output field its
config needs, and its extra networks. `build_model`, the building blocks and ModelConfig ask `model_task(name)`;
no other model module branches on a task's name. (The benchmark's side of a task lives in benchmark/tasks/.)

Importing this module imports no torch: the builders import their networks when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from .registry import Registry

if TYPE_CHECKING:
    from torch import nn

    from .config import ModelConfig
    from .normspec import NormSpec


class ModelTask:
    name: ClassVar[str] = ""
    output_field: ClassVar[str]  # the ModelConfig field the dataset fills: num_classes or out_channels
    pretrained: ClassVar[bool]  # whether its encoder can load ImageNet weights
    batch_norm: ClassVar[bool] = True  # its shared networks normalise with BatchNorm (False: InstanceNorm)

    def encoder(self, config: ModelConfig, in_channels: int, num_modalities: int, norm: NormSpec,
                require_norm: bool) -> nn.Module:
        raise NotImplementedError

    def decoder(self, config: ModelConfig, encoder_channels: list[int], num_modalities: int,
                norm: NormSpec) -> nn.Module:
        raise NotImplementedError

    def discriminator(self, config: ModelConfig) -> nn.Module:
        trained = [n for n in MODEL_TASKS.names() if MODEL_TASKS.get(n).discriminator is not ModelTask.discriminator]
        raise ValueError(f"the {self.name} task trains no discriminator (tasks that do: {', '.join(trained)})")

    def encoder_name(self, config: ModelConfig) -> str:
        raise NotImplementedError


MODEL_TASKS: Registry[type[ModelTask]] = Registry("task")


def model_task(name: str) -> ModelTask:
    return MODEL_TASKS.get(name)()


@MODEL_TASKS.register("segmentation")
class SegmentationModels(ModelTask):
    """A timm CNN (features at strides 4-32) and RefineNet or DeepLabv3+; logits at the input size."""

    output_field = "num_classes"
    pretrained = True

    def encoder(self, config, in_channels, num_modalities, norm, require_norm):
        from .encoder import TimmEncoder

        return TimmEncoder(config.backbone, in_channels, num_modalities, norm=norm,
                           freeze_bn_stats=config.freeze_bn_stats, require_batchnorm=require_norm,
                           pretrained=config.pretrained, pretrained_file=config.pretrained_file,
                           backbone_kwargs=config.backbone_kwargs)

    def decoder(self, config, encoder_channels, num_modalities, norm):
        from .decoders.deeplabv3plus import DeepLabV3PlusDecoder
        from .decoders.refinenet import RefineNetDecoder

        d = config.decoder
        if d.name == "deeplabv3plus":
            return DeepLabV3PlusDecoder(encoder_channels, config.num_classes, d.aspp_channels, d.atrous_rates,
                                        d.low_level_channels, d.dropout, num_modalities=num_modalities,
                                        norm=norm)
        return RefineNetDecoder(encoder_channels, config.num_classes, d.width, d.dropout)

    def encoder_name(self, config):
        return config.backbone


@MODEL_TASKS.register("translation")
class TranslationModels(ModelTask):
    """The pix2pix U-Net of the CEN protocol (instance norms per modality) and its conditional PatchGAN."""

    output_field = "out_channels"
    pretrained = False
    batch_norm = False

    def encoder(self, config, in_channels, num_modalities, norm, require_norm):
        from .translation.unet import UNetEncoder

        g = config.generator
        return UNetEncoder(in_channels, num_modalities, g.base_channels, g.depth, norm, g.track_running_stats)

    def decoder(self, config, encoder_channels, num_modalities, norm):
        from .translation.unet import UNetDecoder

        g = config.generator
        return UNetDecoder(encoder_channels, config.out_channels, num_modalities, g.dropout, g.dropout_levels,
                           norm, g.track_running_stats)

    def discriminator(self, config):
        from .translation.patchgan import PatchDiscriminator

        d = config.discriminator
        return PatchDiscriminator(config.modalities, config.resolved_stem_channels(), config.out_channels,
                                  d.base_channels, d.downsampling)

    def encoder_name(self, config):
        return f"unet{config.generator.depth}"
