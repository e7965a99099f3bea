"""The Task interface. Importing it (and a task module) imports no torch: tables and reports use only the
metadata half; the training and metric methods import torch when they are called."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn
    from torchmetrics import MetricCollection


@dataclass(frozen=True)
class Column:
    """One table column: how to read it from a metric record, its direction (None: a cost, never bold), format."""

    name: str
    get: Callable[[dict[str, Any]], float | None]
    higher_is_better: bool | None
    scale: float = 1.0
    digits: int = 1


def metric_of(key: str, name: str) -> Callable[[dict[str, Any]], float | None]:
    """Reads metrics[key][name] of a record (None where absent or not a number, e.g. FID not computed)."""

    def get(record: dict[str, Any]) -> float | None:
        value = record["metrics"].get(key, {}).get(name)
        return value if isinstance(value, (int, float)) else None

    return get


class Critic:
    """A network trained beside the model with its own optimiser (translation: the PatchGAN discriminator).

    `step` runs after the model's optimiser step and before the GradScaler's update, inside the same training step.
    `state_dict` keys are the checkpoint's keys for it.
    """

    module: nn.Module

    def train(self, mode: bool = True) -> None:
        self.module.train(mode)

    def loss(self, outputs: dict[str, torch.Tensor], target: torch.Tensor,
             inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def step(self, outputs: dict[str, torch.Tensor], target: torch.Tensor, inputs: dict[str, torch.Tensor],
             scaler: Any, autocast: Callable[[], Any], average_gradients: Callable[[nn.Module], None]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError


class Task:
    """What the benchmark needs to know about one task; subclasses set the class attributes and methods."""

    name: ClassVar[str] = ""
    main_metric: ClassVar[str]  # the ensemble metric that picks best.pt, drives tuning and the claims
    main_label: ClassVar[str]  # how tables and plots name it
    higher_is_better: ClassVar[bool]
    headline: ClassVar[tuple[str, ...]]  # the ensemble metrics of the small DVC scores file (first: main_metric)
    test_time_augmentation: ClassVar[bool] = False  # evaluate.flip / evaluate.scales apply
    distribution_metrics: ClassVar[bool] = False  # FID/KID against the targets (evaluate.fid_kid)
    scoring: ClassVar[str] = ""  # how an output becomes the numbers (stated in every result's protocol)

    @property
    def direction(self) -> str:
        """Optuna's / the checkpoint picker's word for higher_is_better."""
        return "maximize" if self.higher_is_better else "minimize"

    def better(self, value: float, than: float | None) -> bool:
        return than is None or (value > than if self.higher_is_better else value < than)

    # --- configuration -------------------------------------------------------------------------------------------
    def model_fields(self, dataset: Any, data: Any, channels: dict[str, int]) -> dict[str, Any]:
        """Model-section keys the dataset decides (segmentation: num_classes; translation: out_channels)."""
        raise NotImplementedError

    # --- training ------------------------------------------------------------------------------------------------
    def loss(self, outputs: dict[str, torch.Tensor], target: torch.Tensor, inputs: dict[str, torch.Tensor],
             critic: Critic | None, train: Any) -> torch.Tensor:
        """The task loss over every output (each branch and the ensemble)."""
        raise NotImplementedError

    def build_critic(self, model: Any, optimiser: Any, device: torch.device, channels_last: bool) -> Critic | None:
        return None

    def synthetic_target(self, model: Any, batch: int, size: tuple[int, int], generator: torch.Generator
                         ) -> torch.Tensor:
        """A valid target of the right shape, for benchmarks that time compute on random tensors."""
        raise NotImplementedError

    # --- metrics -------------------------------------------------------------------------------------------------
    def metrics(self, num_classes: int | None) -> MetricCollection:
        raise NotImplementedError

    def update_metrics(self, collection: MetricCollection, output: torch.Tensor, target: torch.Tensor) -> None:
        raise NotImplementedError

    def metric_row(self, values: dict[str, Any]) -> dict[str, Any]:
        """A computed collection as JSON-able numbers (lists for per-class values), in the reported units."""
        raise NotImplementedError

    # --- reporting -----------------------------------------------------------------------------------------------
    def table_columns(self, branches: list[str]) -> tuple[list[Column], str]:
        """The columns of this task's results table and the name of its main-metric column."""
        raise NotImplementedError

    def curve(self) -> tuple[str, str]:
        """(history key, label) of the validation curve DVC plots draw."""
        return f"val_ensemble_{self.main_metric}", f"val {self.main_label} (ensemble)"

    def target_panel(self, raw: dict[str, np.ndarray], palette: np.ndarray) -> np.ndarray:
        """The ground truth of a decoded sample as an RGB8 image for qualitative grids."""
        raise NotImplementedError

    def prediction_panel(self, output: torch.Tensor, raw: dict[str, np.ndarray], palette: np.ndarray) -> np.ndarray:
        """One model output (for one sample, [C, H, W]) as an RGB8 image."""
        raise NotImplementedError
