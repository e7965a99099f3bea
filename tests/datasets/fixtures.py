"""Tiny files in each real raw format, written by the tests (nothing here is real data): the package's stand-in
writers (datasets/standins.py), which the paper-suite rehearsal uses at the real sizes."""

from asymfusion.datasets.standins import (  # noqa: F401  (re-exported for the tests)
    CITYSCAPES_FRAMES,
    MATLAB_73_HEADER,
    nyu_mapping,
    taskonomy_domain_array,
    write_cityscapes_raw,
    write_class_mapping,
    write_nyu_mat,
    write_nyu_raw,
    write_splits,
    write_taskonomy_raw,
)
