"""What each task means to the data side: the modalities its loader reads (with channels), what a dataset and an
experiment's data section must say, and how a sample's arrays are drawn. The schema and `asymfusion show` ask
`data_task(name)`; the loaders declare their task (`SegmentationDataset.task`) and `build_dataset` looks them up,
so no data module branches on a task's name. Pure data: importing it imports nothing of the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from asymfusion.models.registry import Registry

if TYPE_CHECKING:
    from .config import DataConfig, DatasetConfig


class DataTask:
    name: ClassVar[str] = ""
    modalities: ClassVar[dict[str, int]]  # modality -> channels as the loader returns them

    def check_dataset(self, dataset: DatasetConfig) -> None:
        """Raise ValueError naming what a dataset of this task lacks."""

    def check_data(self, data: DataConfig, dataset: DatasetConfig) -> None:
        """Raise ValueError naming what is wrong with an experiment's data section for this task."""
        for m in data.modalities:
            if m not in self.modalities:
                raise ValueError(f"modality {m!r} is not one of the {self.name} modalities: "
                                 f"{', '.join(self.modalities)}")
        if data.depth_encoding != "raw":
            raise ValueError(f"depth_encoding {data.depth_encoding!r} applies to segmentation depth; {self.name} "
                             "inputs keep their own encoding (leave it raw)")

    def channels(self, data: DataConfig) -> dict[str, int]:
        """Channels of each modality as the loader returns it for this data section."""
        return dict(self.modalities)

    corruptible: ClassVar[bool] = False  # its loader has load_raw/sample: evaluate.corruptions apply (CorruptedView)
    label_keys: ClassVar[tuple[str, ...]] = ()  # sample keys holding class ids (drawn through the palette)
    depth_keys: ClassVar[tuple[str, ...]] = ()  # sample keys holding metric depth (drawn with a colour map)

    def legend(self, dataset: DatasetConfig) -> list[str]:
        """Names the preview grid lists under a colour legend (segmentation: the class names)."""
        return []


DATA_TASKS: Registry[type[DataTask]] = Registry("task")


def data_task(name: str) -> DataTask:
    return DATA_TASKS.get(name)()


@DATA_TASKS.register("segmentation")
class SegmentationData(DataTask):
    modalities = {"rgb": 3, "depth": 1}
    corruptible = True
    label_keys = ("target",)
    depth_keys = ("depth",)

    def check_dataset(self, dataset):
        if dataset.num_classes is None:
            raise ValueError("a segmentation dataset needs num_classes")

    def check_data(self, data, dataset):
        for m in data.modalities:
            if m not in self.modalities:
                raise ValueError(f"modality {m!r} is not one of the {self.name} modalities: "
                                 f"{', '.join(self.modalities)}")
        if data.target is not None:
            raise ValueError("target applies to translation only (segmentation targets are the masks)")
        if data.depth_encoding != "raw" and "depth" not in data.modalities:
            raise ValueError(f"depth_encoding {data.depth_encoding!r} needs the depth modality, which this "
                             f"experiment does not use (modalities: {data.modalities})")

    def channels(self, data):
        return {**self.modalities, "depth": 3 if data.depth_encoding == "hha" else 1}

    def legend(self, dataset):
        return list(dataset.class_names or [])


@DATA_TASKS.register("translation")
class TranslationData(DataTask):
    modalities = {"rgb": 3, "normal": 3, "reshading": 1, "depth_zbuffer": 1, "depth_euclidean": 1,
                  "edge_texture": 1, "edge_occlusion": 1, "principal_curvature": 3}

    def check_data(self, data, dataset):
        super().check_data(data, dataset)
        known = ", ".join(self.modalities)
        if data.target is None:
            raise ValueError(f"a translation experiment needs a target domain, one of: {known}")
        if data.target not in self.modalities:
            raise ValueError(f"target {data.target!r} is not one of: {known}")
        if data.target in data.modalities:
            raise ValueError(f"target {data.target!r} is also an input modality")
