"""Building blocks every fusion method assembles: encoder/decoder per task, the alpha ensemble, and the models.

A model maps {modality: [B, C_m, H, W]} to {branch: output, ..., "ensemble": output}. `StackedModel` is the
shared-encoder design (shared convs, modality-specific norms, one stack [M*B, C, H, W]); methods with their own
encoders compose `EncoderDecoder`s. `FusionModel.param_groups()` splits parameters for per-group learning rates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from .encoder import tile_channels, upsample_to
from .execution import loop_over_modalities
from .norm import ModalityNorm, NormChoice, norm_spec
from .tasks import model_task
from .translation.unet import UNetEncoder

if TYPE_CHECKING:
    from .config import ModelConfig


def make_encoder(config: ModelConfig, in_channels: int, num_modalities: int, norm: NormChoice | None = None,
                 require_norm: bool = True) -> nn.Module:
    """The task's encoder (models/tasks.py): a timm CNN (segmentation) or the U-Net down path (translation).
    `norm` (a models/norm.py preset or NormSpec) says how its norms treat the M modalities of a stack."""
    return model_task(config.task).encoder(config, in_channels, num_modalities, norm_spec(norm), require_norm)


def make_decoder(config: ModelConfig, encoder_channels: list[int], num_modalities: int,
                 norm: NormChoice | None = None) -> nn.Module:
    """The task's decoder (models/tasks.py): `config.decoder.name` (segmentation: RefineNet or DeepLabv3+) or the
    U-Net up path (translation). Its norms treat the modalities of the stack as `norm` says."""
    return model_task(config.task).decoder(config, encoder_channels, num_modalities, norm_spec(norm))


def default_fusion_stages(encoder: nn.Module) -> list[int]:
    """Where stage fusion goes unless told: ResNet stages 1-4, or the instance-normalised U-Net levels (as CEN)."""
    return encoder.normalised_levels if isinstance(encoder, UNetEncoder) else [1, 2, 3, 4]


class EncoderDecoder(nn.Module):
    """encoder -> decoder -> output at the input's H, W (segmentation logits are upsampled bilinearly)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x: Tensor) -> Tensor:
        return upsample_to(self.decoder(self.encoder(x)), x.shape[-2:])


class AlphaEnsemble(nn.Module):
    """sum_m softmax(alpha)_m * out_m.detach(), alpha initialised to ones: a loss on it trains only alpha."""

    def __init__(self, num_branches: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(num_branches))

    def forward(self, outputs: list[Tensor]) -> Tensor:
        weights = torch.softmax(self.alpha, dim=0)
        return sum(w * out.detach() for w, out in zip(weights, outputs))


class FusionModel(nn.Module):
    """Base of every built model: the output contract and the parameter groups."""

    modalities: list[str]

    def __init__(self) -> None:
        super().__init__()
        self.ensemble: AlphaEnsemble | None = None  # subclasses with branches set an AlphaEnsemble

    def encoder_modules(self) -> list[nn.Module]:
        raise NotImplementedError

    def auxiliary_losses(self) -> dict[str, Tensor]:
        """Extra training-loss terms of the method, already weighted (e.g. CEN's L1 on BN scaling factors).

        The trainer adds them to the task loss inside autocast, before gradient scaling, and logs each per epoch
        as `train_aux_<name>`. Default: every submodule's `auxiliary_losses()` (a module anywhere in the model may
        define one; terms of the same name are summed), so a fusion module brings its own term along.
        """
        terms: dict[str, Tensor] = {}
        for module in self._contributors("auxiliary_losses"):
            for name, value in module.auxiliary_losses().items():
                terms[name] = terms[name] + value if name in terms else value
        return terms

    def diagnostics(self) -> dict[str, float]:
        """Numbers that say what the method did (e.g. the share of exchanged channels per stage), computed at the
        end of every epoch (history `diag_<name>`) and on the evaluated checkpoint (metrics JSON `diagnostics`).
        Default: every submodule's `diagnostics()` merged; a name given by several modules is averaged."""
        values: dict[str, list[float]] = {}
        for module in self._contributors("diagnostics"):
            for name, value in module.diagnostics().items():
                values.setdefault(name, []).append(float(value))
        return {name: sum(v) / len(v) for name, v in values.items()}

    def _contributors(self, hook: str) -> list[nn.Module]:
        return [m for m in self.modules() if m is not self and not isinstance(m, FusionModel)
                and callable(getattr(m, hook, None))]

    @property
    def output_names(self) -> list[str]:
        """Keys of the output dict: the branches (if any), then "ensemble"."""
        return [*self.modalities, "ensemble"] if self.ensemble is not None else ["ensemble"]

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """{"encoder", "decoder", "ensemble"}: each trainable parameter in exactly one (other extras -> decoder)."""
        encoder_ids = {id(p) for m in self.encoder_modules() for p in m.parameters()}
        ensemble_ids = {id(p) for p in self.ensemble.parameters()} if self.ensemble is not None else set()
        groups: dict[str, list[nn.Parameter]] = {"encoder": [], "decoder": [], "ensemble": []}
        for p in self.parameters():
            if p.requires_grad:
                key = "encoder" if id(p) in encoder_ids else "ensemble" if id(p) in ensemble_ids else "decoder"
                groups[key].append(p)
        return groups

    def modality_parameters(self) -> dict[str, list[nn.Parameter]]:
        """Parameters only one modality uses (its norm copies, or its own network); the summary table counts them."""
        if len(self.modalities) == 1:
            return {self.modalities[0]: list(self.parameters())}
        own: dict[str, list[nn.Parameter]] = {m: [] for m in self.modalities}
        for module in self.modules():
            if isinstance(module, ModalityNorm):
                for name, params in zip(self.modalities, module.modality_parameters()):
                    own[name] += params
        return own

    def _stack(self, inputs: dict[str, Tensor], channels: int) -> Tensor:
        missing = [m for m in self.modalities if m not in inputs]
        if missing:
            raise KeyError(f"inputs lack modalities {missing}; got {sorted(inputs)}")
        return torch.cat([tile_channels(inputs[m], channels) for m in self.modalities], dim=0)


class StackedModel(FusionModel):
    """Shared encoder and decoder run once over the modality stack; one branch per modality plus the ensemble.

    Its norms follow `config.norm` (resolved to the method's default: modality-specific for msbn and asymfusion,
    one shared BN for shared_bn; models/norm.py), or `norm` when given.
    branches=False returns only "ensemble" (used by `single`, where the stack holds one modality).
    """

    def __init__(self, config: ModelConfig, modalities: list[str] | None = None, norm: NormChoice | None = None,
                 branches: bool = True) -> None:
        super().__init__()
        self.modalities = list(modalities or config.modalities)
        self.num_modalities = len(self.modalities)
        self.stem_channels = config.resolved_stem_channels()
        spec = config.norm_spec() if norm is None else norm_spec(norm)
        encoder = make_encoder(config, self.stem_channels, self.num_modalities, spec,
                               require_norm=self.num_modalities > 1)
        decoder = make_decoder(config, encoder.channels, self.num_modalities, spec)
        self.net = EncoderDecoder(encoder, decoder)
        self.ensemble = AlphaEnsemble(self.num_modalities) if branches else None
        if config.execution == "loop" and self.num_modalities > 1:
            loop_over_modalities(self.net, self.num_modalities)

    @property
    def encoder(self) -> nn.Module:
        return self.net.encoder

    def encoder_modules(self) -> list[nn.Module]:
        return [self.net.encoder]

    def forward(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        y = self.net(self._stack(inputs, self.stem_channels))
        if self.ensemble is None:
            return {"ensemble": y}
        outputs = dict(zip(self.modalities, y.chunk(self.num_modalities, dim=0)))
        outputs["ensemble"] = self.ensemble(list(outputs.values()))
        return outputs
