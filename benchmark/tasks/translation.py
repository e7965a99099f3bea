"""Multi-input image translation (Taskonomy, the procedural scenes): the CEN protocol.

Generator loss: BCE adversarial (a conditional PatchGAN, the task's critic) + `train.l1_weight` x L1, over every
branch and the ensemble; the discriminator is trained in the same step (0.5 x (real + mean of fakes)). Metrics on
images mapped to [0, 1]: L1 (picks best.pt, lower is better), PSNR, SSIM, and FID/KID at evaluation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from asymfusion.benchmark.tasks import register_task
from asymfusion.benchmark.tasks.base import Column, Critic, Task, metric_of

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn
    from torchmetrics import MetricCollection


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """Generator outputs and targets from [-1, 1] to [0, 1], where the metrics are computed."""
    return ((images.float() + 1.0) / 2.0).clamp(0.0, 1.0)


def _judge(discriminator, inputs, image, key):
    """Patch logits of `image`: a branch's output given its own modality; the ensemble or a target given each."""
    modality = key if key in discriminator.modalities else None
    return discriminator(inputs, image, modality)


class PatchGANCritic(Critic):
    """The conditional PatchGAN shared by all modalities, with its Adam (lr_discriminator, the model's betas)."""

    def __init__(self, module: nn.Module, optimiser: Any) -> None:
        self.module = module
        self.optimiser = optimiser

    def generator_loss(self, outputs, target, inputs, l1_weight: float) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        total = torch.zeros((), device=target.device)
        for key, out in outputs.items():
            logits = _judge(self.module, inputs, out, key)
            adversarial = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
            total = total + adversarial + l1_weight * F.l1_loss(out, target)
        return total

    def loss(self, outputs, target, inputs) -> torch.Tensor:
        """0.5 x (BCE on the real target + mean BCE over every output judged as fake), as pix2pix/CEN."""
        import torch
        import torch.nn.functional as F

        real = self.module(inputs, target, None)
        loss = F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
        fakes = [_judge(self.module, inputs, out.detach(), key) for key, out in outputs.items()]
        loss = loss + sum(F.binary_cross_entropy_with_logits(f, torch.zeros_like(f)) for f in fakes) / len(fakes)
        return 0.5 * loss

    def step(self, outputs, target, inputs, scaler, autocast: Callable[[], Any],
             average_gradients: Callable[[nn.Module], None]) -> None:
        with autocast():
            loss = self.loss(outputs, target, inputs)
        self.optimiser.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        average_gradients(self.module)  # DDP cannot wrap a module called several times per step
        scaler.step(self.optimiser)

    def state_dict(self) -> dict[str, Any]:
        return {"discriminator": self.module.state_dict(), "d_optimiser": self.optimiser.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["discriminator"])
        self.optimiser.load_state_dict(state["d_optimiser"])


@register_task("translation")
class Translation(Task):
    main_metric = "l1"
    main_label = "L1"
    higher_is_better = False
    headline = ("l1", "ssim", "fid")
    distribution_metrics = True
    scoring = ("generator output at the evaluated input size, mapped from [-1, 1] to [0, 1]; L1, PSNR and SSIM "
               "on [0, 1] (torchmetrics) against the target domain; FID/KID (x100) of uint8 images over the split")

    def model_fields(self, dataset: Any, data: Any, channels: dict[str, int]) -> dict[str, Any]:
        return {"out_channels": channels[data.target]}

    def loss(self, outputs, target, inputs, critic, train) -> torch.Tensor:
        return critic.generator_loss(outputs, target, inputs, train.l1_weight)

    def build_critic(self, model, optimiser, device, channels_last) -> PatchGANCritic:
        import torch

        from asymfusion.models import build_discriminator

        module = build_discriminator(model).to(device)
        if channels_last:
            module = module.to(memory_format=torch.channels_last)
        return PatchGANCritic(module, torch.optim.Adam(module.parameters(), lr=optimiser.lr_discriminator,
                                                       betas=optimiser.betas))

    def synthetic_target(self, model, batch, size, generator) -> torch.Tensor:
        import torch

        return torch.randn(batch, model.out_channels, *size, generator=generator).tanh()

    def metrics(self, num_classes: int | None) -> MetricCollection:
        from torchmetrics import MeanAbsoluteError, MetricCollection
        from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

        return MetricCollection({"l1": MeanAbsoluteError(), "psnr": PeakSignalNoiseRatio(data_range=1.0),
                                 "ssim": StructuralSimilarityIndexMeasure(data_range=1.0)})

    def update_metrics(self, collection, output, target) -> None:
        collection.update(to_unit(output.float()), to_unit(target))

    def metric_row(self, values: dict[str, Any]) -> dict[str, Any]:
        return {name: float(value) for name, value in values.items()}

    def table_columns(self, branches: list[str]) -> tuple[list[Column], str]:
        cols = [Column("L1", metric_of("ensemble", "l1"), False, 1.0, 4),
                Column("PSNR", metric_of("ensemble", "psnr"), True, 1.0, 2),
                Column("SSIM", metric_of("ensemble", "ssim"), True, 1.0, 3),
                Column("FID", metric_of("ensemble", "fid"), False, 1.0, 1),
                Column("KID×100", metric_of("ensemble", "kid_x100"), False, 1.0, 2)]
        return cols, "L1"

    def target_panel(self, raw, palette) -> np.ndarray:
        from asymfusion.datasets.colours import to_display

        return to_display("target", raw["target"], self.name)

    def prediction_panel(self, output, raw, palette) -> np.ndarray:
        from asymfusion.datasets.colours import to_display

        pred = ((output.float().cpu().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
        return to_display("prediction", pred[..., 0] if pred.shape[2] == 1 else pred, self.name)
