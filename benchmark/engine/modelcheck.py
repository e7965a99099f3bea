"""Build a run's model on the meta device before any work starts: what only the model knows (a timm backbone name,
its `backbone_kwargs`, a method's stage range) is then reported like any other configuration error, before a log,
a checkpoint or a metrics file is written. The meta device allocates nothing and loads no weights (~0.1 s for the
quick models, ~1 s for ResNet-101)."""

from __future__ import annotations

import torch

from asymfusion.benchmark.errors import ConfigError


def check_model_builds(model_config, where: str) -> None:
    """ConfigError naming `where` (e.g. `params.yaml: experiments.quick-msbn.model`) when the model cannot be built."""
    from asymfusion.models import build_model

    config = model_config.model_copy(update={"pretrained": False})  # weights are checked where they load
    try:
        with torch.device("meta"):
            build_model(config)
    except Exception as exc:  # timm: RuntimeError (unknown model), TypeError (bad kwarg); methods: ValueError
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = ""
        if "Unknown model" in message or "unexpected keyword" in message:
            hint = (f" (backbone {config.backbone!r}, backbone_kwargs {config.backbone_kwargs}; "
                    "`python -c \"import timm; print(timm.list_models('resnet*'))\"` lists timm's names)")
        raise ConfigError(f"{where}: cannot build the model: {message}{hint}") from None
