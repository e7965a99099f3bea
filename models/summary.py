"""Parameter table of built models; `python -m asymfusion.models.summary` prints the paper-architecture table.

Counts are trainable-parameter tensors (BN running statistics are buffers, so they are excluded), in millions.
Models are built on the meta device: no memory is allocated and ResNet-101 builds in about a second.
"""

from __future__ import annotations

import pandas as pd
import torch

from .build import build_model
from .config import ModelConfig

PAPER_METHODS = ["single", "shared_bn", "msbn", "asymfusion", "separate", "late", "early", "cen", "esanet", "sagate",
                 "cmx", "acnet"]


def _millions(params: list[torch.nn.Parameter]) -> float:
    return sum({id(p): p.numel() for p in params}.values()) / 1e6


def parameter_table(configs: dict[str, ModelConfig]) -> pd.DataFrame:
    """One row per config: name, method, backbone, params (M), shared (M), and one `<modality> (M)` column each
    (unrounded millions; `to_markdown` prints two decimals).

    A modality's column counts parameters only it uses (its BN copies for msbn/asymfusion, its own encoder for
    separate, its whole network for late or single); `shared (M)` is the rest.
    """
    rows = []
    for name, config in configs.items():
        with torch.device("meta"):
            model = build_model(config)
        total = _millions(list(model.parameters()))
        own = {m: _millions(p) for m, p in model.modality_parameters().items()}
        row = {"name": name, "method": config.method, "backbone": config.backbone, "params (M)": total,
               "shared (M)": total - sum(own.values())}
        row.update({f"{m} (M)": v for m, v in own.items()})
        rows.append(row)
    return pd.DataFrame(rows).fillna(0.0)


def to_markdown(table: pd.DataFrame) -> str:
    """GitHub markdown table (numbers with two decimals) without needing the optional `tabulate` package."""
    cells = [[f"{v:.2f}" if isinstance(v, float) else str(v) for v in row] for row in table.itertuples(index=False)]
    header = [str(c) for c in table.columns]
    numeric = [pd.api.types.is_numeric_dtype(table[c]) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if n else ":---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def paper_configs(backbone: str = "resnet101", num_classes: int = 40) -> dict[str, ModelConfig]:
    """The paper's NYUDv2 architecture: RGB + depth, 40 classes, RefineNet width 256, every baseline."""
    base = dict(task="segmentation", modalities=["rgb", "depth"], in_channels={"rgb": 3, "depth": 1},
                num_classes=num_classes, backbone=backbone)
    return {method: ModelConfig(method=method, **base) for method in PAPER_METHODS}


def main() -> None:
    table = parameter_table(paper_configs())
    print("Parameters of the paper architecture (ResNet-101, RefineNet decoder, 40 classes, RGB + depth); "
          "BN running statistics excluded.\n")
    print(to_markdown(table))


if __name__ == "__main__":
    main()
