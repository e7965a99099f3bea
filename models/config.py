"""The model section of an experiment: everything `build_model` needs, validated up front.

The experiment resolver fills `task`, `modalities`, `in_channels`, `num_classes` / `out_channels` from the dataset
section; users write the rest in params.yaml. Method-specific options live under `fusion` and are checked against
the chosen method's own Options model, so a typo fails at config time rather than half-way through a run.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .normspec import NormChoice, NormSpec, norm_spec
from .tasks import MODEL_TASKS, model_task


class RefineNetOptions(BaseModel):
    """Segmentation decoder: the RefineNet of the official AsymFusion/CEN code (light-weight-refinenet lineage)."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["refinenet"] = Field("refinenet", exclude=True, description="Decoder choice; the default when `name` "
                                       "is absent. Left out of dumps, so run hashes of RefineNet configs predate it.")
    width: int = Field(256, ge=1, description="Channels of the refinement paths; the deepest path uses 2*width "
                       "(official: 256, i.e. 512 on the layer4 path).")
    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="Dropout on the two deepest encoder features and before "
                           "the classifier (official: 0.5).")


class DeepLabV3PlusOptions(BaseModel):
    """Segmentation decoder: DeepLabv3+ (ASPP on the deepest feature, decoder at stride 4): the paper's Cityscapes."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["deeplabv3plus"]
    aspp_channels: int = Field(256, ge=1, description="Channels of every ASPP branch, the projection and the two 3x3 "
                               "decoder convs (official: 256).")
    atrous_rates: list[int] = Field([6, 12, 18], min_length=1, description="Dilation of the 3x3 ASPP branches "
                                    "(official: 6, 12, 18 at output stride 16; halve them at the encoder's stride 32).")
    low_level_channels: int = Field(48, ge=1, description="Channels the stride-4 feature is reduced to (official: 48).")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout after the ASPP projection (official: 0.1).")

    @field_validator("atrous_rates")
    @classmethod
    def _positive_rates(cls, value: list[int]) -> list[int]:
        if any(r < 1 for r in value):
            raise ValueError(f"atrous rates must be >= 1, got {value}")
        return value


DECODERS: dict[str, type[BaseModel]] = {"refinenet": RefineNetOptions, "deeplabv3plus": DeepLabV3PlusOptions}
DecoderOptions = Annotated[RefineNetOptions | DeepLabV3PlusOptions, Field(discriminator="name")]


class GeneratorOptions(BaseModel):
    """Translation generator: the pix2pix U-Net of the CEN protocol."""

    model_config = ConfigDict(extra="forbid")

    base_channels: int = Field(64, ge=1, description="Channels of the first encoder level (ngf; official 64); "
                               "level i has base_channels * min(2**(i-1), 8).")
    depth: int = Field(8, ge=2, description="Encoder levels, each halving the resolution; inputs need H, W divisible "
                       "by 2**depth (official: 8 for 256 px).")
    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="Dropout in the innermost decoder levels (official 0.5).")
    dropout_levels: int = Field(3, ge=0, description="How many innermost decoder levels use dropout (official 3).")
    track_running_stats: bool = Field(True, description="InstanceNorm keeps running statistics and uses them in eval "
                                      "mode, as the CEN code does.")


class DiscriminatorOptions(BaseModel):
    """Translation discriminator: the conditional PatchGAN of the CEN protocol."""

    model_config = ConfigDict(extra="forbid")

    base_channels: int = Field(64, ge=1, description="Channels of the first layer (ndf; official 64).")
    downsampling: int = Field(3, ge=1, description="Stride-2 layers before the two stride-1 layers (official 3).")


class ModelConfig(BaseModel):
    """Everything needed to build one model. Field descriptions double as CLI/config help."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field(description="Registered fusion method (see `list_fusions()`), e.g. asymfusion, msbn, early.")
    task: str = Field(description="Filled from the dataset section: a task of models/tasks.py.")
    modalities: list[str] = Field(min_length=1, description="Input modalities in stacking order (filled from the "
                                  "dataset section).")
    in_channels: dict[str, int] = Field(description="Channels per modality (filled from the dataset section).")
    num_classes: int | None = Field(None, ge=1, description="Segmentation classes (segmentation only).")
    out_channels: int | None = Field(None, ge=1, description="Output image channels (translation only).")
    backbone: str = Field("resnet18", description="timm CNN name for the segmentation encoder (features_only).")
    backbone_kwargs: dict[str, Any] = Field(default_factory=dict, description="Extra timm.create_model arguments, "
                                            "e.g. {channels: [32, 64, 128, 256]}.")
    stem_channels: int | None = Field(None, ge=1, description="Input channels of a shared stem; thinner inputs are "
                                      "tiled (depth 1 -> 3). Default: the largest in_channels.")
    pretrained: bool = Field(False, description="Load ImageNet weights into the encoder: from timm's cache, or from "
                             "pretrained_file. Failing to load is an error, never silently skipped.")
    pretrained_file: str | None = Field(None, description="Local weight file for the backbone (timm "
                                        "pretrained_cfg_overlay file=...); requires pretrained: true.")
    norm: NormChoice | None = Field(None, description="Shared-encoder methods: which statistics and affines "
                                    "normalise each modality (models/norm.py): a preset — modality (MSBN), shared "
                                    "(one BN), official_shared (the official shared class) — or {statistics: "
                                    "modality|joint|chunk, affine: modality|shared}. Default: the method's own "
                                    "(shared for shared_bn, modality otherwise).")
    freeze_bn_stats: bool = Field(True, description="Keep encoder BN running statistics frozen while training "
                                  "(official default; only affines learn). Turn off when training from scratch.")
    fusion: dict[str, Any] = Field(default_factory=dict, description="Options of the chosen method; unknown keys are "
                                   "rejected. Resolved to the full option set, defaults included.")
    decoder: DecoderOptions = Field(default_factory=RefineNetOptions, description="Segmentation decoder: `name` "
                                    "refinenet (default when absent) or deeplabv3plus, plus that decoder's options.")
    generator: GeneratorOptions = Field(default_factory=GeneratorOptions, description="Translation generator options.")
    discriminator: DiscriminatorOptions = Field(default_factory=DiscriminatorOptions,
                                                description="Translation discriminator options.")
    execution: Literal["stacked", "loop"] = Field("stacked", description="stacked: modalities travel as one "
                                                  "[M*B, C, H, W] batch; loop: every shared conv runs once per "
                                                  "modality like the official code (same outputs; for benchmarks).")

    @field_validator("method")
    @classmethod
    def _method_is_registered(cls, value: str) -> str:
        from .fusion.registry import get_fusion

        get_fusion(value)  # raises listing the registered names
        return value

    @field_validator("task")
    @classmethod
    def _task_is_registered(cls, value: str) -> str:
        MODEL_TASKS.get(value)  # raises listing the registered tasks
        return value

    @field_validator("decoder", mode="before")
    @classmethod
    def _decoder_name(cls, value: Any) -> Any:
        """No `name` means RefineNet (params.yaml before the choice existed); an unknown one lists the choices."""
        if isinstance(value, dict):
            name = value.get("name", "refinenet")
            if name not in DECODERS:
                raise ValueError(f"unknown decoder {name!r}; allowed: {', '.join(DECODERS)}")
            value = {**value, "name": name}
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        if len(set(self.modalities)) != len(self.modalities):
            raise ValueError(f"modalities must be unique, got {self.modalities}")
        if "ensemble" in self.modalities:
            raise ValueError("'ensemble' is reserved for the fused output and cannot name a modality")
        if set(self.in_channels) != set(self.modalities):
            raise ValueError(f"in_channels keys {sorted(self.in_channels)} must match modalities {self.modalities}")
        if self.stem_channels is not None and self.stem_channels < max(self.in_channels.values()):
            raise ValueError(f"stem_channels={self.stem_channels} is thinner than the widest input {self.in_channels}")
        task = model_task(self.task)
        if getattr(self, task.output_field) is None:
            raise ValueError(f"{self.task} needs {task.output_field}")
        if self.pretrained_file is not None and not self.pretrained:
            raise ValueError("pretrained_file is set but pretrained is false; set pretrained: true to load it "
                             "(weights are never silently skipped)")
        if self.pretrained and not task.pretrained:
            raise ValueError(f"pretrained weights apply to timm encoders only; the {self.task} encoder "
                             f"({task.encoder_name(self)}) trains from scratch")
        from .fusion.registry import get_fusion

        method = get_fusion(self.method)
        if self.task not in method.tasks:
            raise ValueError(f"method {self.method!r} supports {' and '.join(method.tasks)} only; this experiment's "
                             f"dataset is a {self.task} dataset")
        if method.max_modalities is not None and len(self.modalities) > method.max_modalities:
            raise ValueError(f"method {self.method!r} fuses at most {method.max_modalities} modalities; got "
                             f"{len(self.modalities)}: {self.modalities}")
        options_model = method.Options
        unknown = sorted(set(self.fusion) - set(options_model.model_fields))
        if unknown:
            raise ValueError(f"fusion option(s) {unknown} not accepted by method {self.method!r}; "
                             f"allowed: {sorted(options_model.model_fields)}")
        self.fusion = options_model.model_validate(self.fusion).model_dump()
        spec = norm_spec(method.default_norm if self.norm is None else self.norm)
        if spec.statistics == "joint" and spec.affine == "modality" and not task.batch_norm:
            raise ValueError(f"norm {{statistics: joint, affine: modality}} needs BatchNorms; the {self.task} "
                             "models normalise with InstanceNorms")
        method.check_norm(spec, self.task)
        self.norm = spec.preset() or spec  # presets stay names, so configs (and run hashes) read as written
        return self

    def norm_spec(self) -> NormSpec:
        """The resolved `norm` as a NormSpec."""
        return norm_spec(self.norm)

    def encoder_name(self) -> str:
        """What the encoder is, for tables: the timm backbone, or `unet<depth>` for the translation generator."""
        return model_task(self.task).encoder_name(self)

    def resolved_stem_channels(self) -> int:
        """Channels the shared stem takes (thinner modalities are tiled up to it)."""
        return self.stem_channels or max(self.in_channels.values())
