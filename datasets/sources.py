"""The catalogue of fetchable sources: every pinned URL, size, checksum and commit, with its provenance.

Kept apart from the code that downloads them so that a change of a pinned value is a one-file, reviewable diff
(tests/datasets/test_fetch.py pins the key values; docs/data.md documents each and where it comes from).
"""

from __future__ import annotations

from asymfusion.datasets.artifacts import Artifact

__all__ = [
    "CEN_COMMIT",
    "CITYSCAPES_PACKAGES",
    "CITYSCAPES_PASSWORD_ENV",
    "CITYSCAPES_URL",
    "CITYSCAPES_USER_ENV",
    "INCEPTION_ARTIFACTS",
    "NYU_ARTIFACTS",
    "SOURCES",
    "TASKONOMY_COMMIT_ENV",
    "TASKONOMY_COMMITS",
    "TASKONOMY_LIST_COUNTS",
    "TASKONOMY_LISTS",
    "TASKONOMY_REPO",
    "TASKONOMY_URL",
]

SOURCES = ("nyudv2", "cityscapes", "taskonomy", "inception")

# Checksums are copied from the dataset sources notes (docs/data.md lists each with its provenance); none is invented.

NYU_ARTIFACTS = (
    Artifact(
        "nyu_depth_v2_labeled.mat",
        "http://horatio.cs.nyu.edu/mit/silberman/nyu_depth_v2/nyu_depth_v2_labeled.mat",
        size=2_972_037_809,
        sha256="2d724b0c0ab358aa1ce5df855e5bd14a2279ab7202efe22f32a30d612dcb86aa",
        md5="520609c519fba3ba5ac58c8fefcc3530",
        provenance="size, md5 and sha256 as published by third parties (NYU publishes none); not re-hashed here",
    ),
    Artifact(
        "splits.mat",
        "http://horatio.cs.nyu.edu/mit/silberman/indoor_seg_sup/splits.mat",
        size=2_626,
        sha256="6e081404491a8bfba2f066beaa9713ef6046f9007aa5f799f2a350506a580cee",
        md5="08e3c3aea27130ac7c01ffd739a4535f",
        provenance="hashed from the byte-identical copy in ankurhanda/nyuv2-meta-data@b92d15c",
    ),
    Artifact(
        "classMapping40.mat",
        "https://raw.githubusercontent.com/ankurhanda/nyuv2-meta-data/b92d15c506876dada1ac4086938e30ebc4deb49b/"
        "classMapping40.mat",
        size=10_474,
        sha256="ff177194cce9a2163517f1e1e6f1c64c50987162f542dedddc04bbf6ebe6d851",
        md5="e377c88729dd63af81205ac9a8634a19",
        provenance="hashed at the pinned commit of ankurhanda/nyuv2-meta-data",
    ),
)

INCEPTION_ARTIFACTS = (
    Artifact(
        "weights-inception-2015-12-05-6726825d.pth",
        "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
        size=95_628_359,
        sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
        provenance="URL from torch-fidelity's code; size and sha256 as published by third parties",
    ),
)

CEN_COMMIT = "0088d87ab36dc25acf4a13a100071ad859f5af9c"
TASKONOMY_LISTS = (
    Artifact(
        "train_domain.txt",
        f"https://raw.githubusercontent.com/yikaiw/CEN/{CEN_COMMIT}/image2image_translation/data/train_domain.txt",
        size=46_326,
        sha256="62109abb3684fac44ae550fc0b33767cc6b98da2c52d51cbfb610edc9ee06191",
        md5="4b9370b5e62094a72ffa769dac6993a8",
        provenance="hashed at the pinned CEN commit",
    ),
    Artifact(
        "val_domain.txt",
        f"https://raw.githubusercontent.com/yikaiw/CEN/{CEN_COMMIT}/image2image_translation/data/val_domain.txt",
        size=23_158,
        sha256="ca62a0feb101c2116f1bed89cf81a9ad069f3ebb305cac376f55270cfc13de8d",
        md5="1c6fd6d565a43867b06ea19c29fd1458",
        provenance="hashed at the pinned CEN commit",
    ),
)
TASKONOMY_LIST_COUNTS = {"train_domain.txt": 1000, "val_domain.txt": 500}
TASKONOMY_REPO = "alexsax/taskonomy-sample-model-1"
TASKONOMY_URL = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"
TASKONOMY_COMMIT_ENV = "ASYMFUSION_TASKONOMY_COMMIT"
# The sample repository added each domain in its own commit. These are the commits a public code index records for
# each domain's files (every file there has a single version). They were looked up, not downloaded from: see
# docs/data.md. `--commit SHA` (or ASYMFUSION_TASKONOMY_COMMIT) replaces all of them with one commit.
TASKONOMY_COMMITS = {
    "rgb": "eed3233b1338f74b38af6d91b37cd9e03528d5e8",
    "normal": "3bfdb62b2c92ad78c2d6c65f242620f4fc61355f",
    "reshading": "aa81d967aacc195d7b21016d76ef16a057f2edfc",
    "depth_euclidean": "ea3c027a90c92fc4a3b3cdf3d32e2d2957e2c975",
    "depth_zbuffer": "ccddd0cda68a632b26308f80c941ee642c333eea",
    "edge_texture": "9086bb2555ac28e5eb6d3114d19339146a8666ad",
    "edge_occlusion": "64e4be8066b3293faf61c5cab7d254eecc3f0aed",
    "principal_curvature": "33548f2e2b21d4c685c85ac09277fb317ffbbb79",
}

CITYSCAPES_URL = "https://www.cityscapes-dataset.com"
CITYSCAPES_PACKAGES = (
    "gtFine_trainvaltest.zip",
    "leftImg8bit_trainvaltest.zip",
    "disparity_trainvaltest.zip",
    "camera_trainvaltest.zip",
)
CITYSCAPES_USER_ENV = "CITYSCAPES_USERNAME"
CITYSCAPES_PASSWORD_ENV = "CITYSCAPES_PASSWORD"
