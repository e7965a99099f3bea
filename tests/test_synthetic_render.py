"""The procedural renderer: determinism, geometric consistency, class design and the on-disk layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from asymfusion.datasets import formats
from asymfusion.datasets.synthetic import (
    APPEARANCE_ONLY_PAIRS,
    CLASS_FAMILY,
    EDGE_OCCLUSION_SCALE,
    GEOMETRY_ONLY_PAIRS,
    SYNTHETIC_CLASSES,
    SYNTHETIC_PALETTE,
    render_dataset,
    render_view,
    sample_scene,
)
from asymfusion.datasets.synthetic.render import TRANSLATION_OUT_DOMAINS

SIZE = 32
N_TRAIN, N_VAL, VPS = 6, 4, 2
K = len(SYNTHETIC_CLASSES)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    render_dataset(out, size=SIZE, n_train=N_TRAIN, n_val=N_VAL, views_per_scene=VPS, seed=0, progress=False)
    return out


@pytest.fixture(scope="module")
def views() -> list[dict[str, np.ndarray]]:
    return [render_view(3, i, 48) for i in range(12)]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _back_project(view: dict[str, np.ndarray]) -> np.ndarray:
    z = view["depth"].astype(np.float64)
    fx, fy, cx, cy = view["intrinsics"]
    v, u = np.mgrid[0 : z.shape[0], 0 : z.shape[1]]
    return np.stack([(u - cx) / fx * z, (v - cy) / fy * z, z], axis=-1)


def _relative_jumps(z: np.ndarray) -> np.ndarray:
    """Largest |z_p - z_q| / min(z_p, z_q) over each pixel's 4-neighbours."""
    rel = np.zeros_like(z, dtype=np.float64)
    for ax in (0, 1):
        a, b = np.delete(z, -1, ax), np.delete(z, 0, ax)
        r = np.abs(a - b) / np.minimum(a, b)
        lo = [slice(None)] * 2
        hi = [slice(None)] * 2
        lo[ax], hi[ax] = slice(0, -1), slice(1, None)
        rel[tuple(lo)] = np.maximum(rel[tuple(lo)], r)
        rel[tuple(hi)] = np.maximum(rel[tuple(hi)], r)
    return rel


# ------------------------------------------------------------------------------------------------ determinism


def test_same_arguments_give_byte_identical_files_for_any_worker_count(rendered: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    render_dataset(again, size=SIZE, n_train=N_TRAIN, n_val=N_VAL, views_per_scene=VPS, seed=0, workers=2,
                   progress=False)
    first, second = _files(rendered), _files(again)
    assert sorted(first) == sorted(second)
    assert [name for name in first if first[name] != second[name]] == []


def test_another_seed_gives_other_images() -> None:
    assert not np.array_equal(render_view(0, 0, SIZE)["rgb"], render_view(1, 0, SIZE)["rgb"])
    assert not np.array_equal(render_view(0, 0, SIZE)["depth"], render_view(0, 1, SIZE)["depth"])


def test_view_does_not_depend_on_global_random_state_or_render_order() -> None:
    np.random.seed(1)
    first = render_view(5, 7, SIZE)["rgb"]
    np.random.seed(2)
    render_view(5, 3, SIZE)
    np.testing.assert_array_equal(first, render_view(5, 7, SIZE)["rgb"])


# ------------------------------------------------------------------------------------------------ geometry


def test_normals_agree_with_normals_from_back_projected_depth(views: list[dict[str, np.ndarray]]) -> None:
    errors = []
    for view in views:
        p = _back_project(view)
        n = np.cross(p[1:-1, 2:] - p[1:-1, :-2], p[2:, 1:-1] - p[:-2, 1:-1])
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        n = np.where(n[..., 2:3] > 0, -n, n)  # towards the camera, like the rendered normals
        lab = view["labels"]
        interior = (ndimage.maximum_filter(lab, 3) == ndimage.minimum_filter(lab, 3))[1:-1, 1:-1]
        interior &= (view["edge_occlusion"] < 0.02)[1:-1, 1:-1]
        cos = np.clip((n * view["normal"][1:-1, 1:-1]).sum(-1), -1, 1)
        errors.append(np.degrees(np.arccos(cos))[interior])
    err = np.concatenate(errors)
    assert err.size > 5000
    assert np.median(err) < 1.0
    assert np.percentile(err, 75) < 3.0


def test_normals_are_unit_and_face_the_camera(views: list[dict[str, np.ndarray]]) -> None:
    for view in views:
        n = view["normal"]
        np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1.0, atol=1e-5)
        rays = _back_project(view)
        assert ((n * rays).sum(-1) <= 1e-6).all()


def test_occlusion_edges_sit_on_depth_jumps_and_strong_jumps_are_flagged(
    views: list[dict[str, np.ndarray]],
) -> None:
    near_jump, on_strong = [], []
    for view in views:
        rel = _relative_jumps(view["depth"].astype(np.float64))
        occ = view["edge_occlusion"]
        near_jump.append(ndimage.maximum_filter(rel, 5)[occ > 0.1])
        on_strong.append(occ[rel > 0.3])
    near, strong = np.concatenate(near_jump), np.concatenate(on_strong)
    assert near.size > 100 and strong.size > 100
    assert (near > 0.1).all()  # every marked pixel is within 2 px of a >10% depth step
    assert (strong > 0.05).mean() > 0.97  # and (almost) every >30% depth step is marked


def test_smooth_slanted_surfaces_are_not_occlusion_edges(views: list[dict[str, np.ndarray]]) -> None:
    for view in views:
        floor = view["labels"] == SYNTHETIC_CLASSES.index("floor")
        inner = ndimage.binary_erosion(floor, iterations=3)
        assert (view["edge_occlusion"][inner] < 0.02).all()


def test_euclidean_depth_is_ray_length_and_never_below_zbuffer(views: list[dict[str, np.ndarray]]) -> None:
    for view in views:
        z, e = view["depth"], view["depth_euclidean"]
        assert (z > 0).all() and (e >= z).all()
        np.testing.assert_allclose(e, np.linalg.norm(_back_project(view), axis=-1), rtol=1e-5)


def test_modalities_have_documented_shapes_and_ranges(views: list[dict[str, np.ndarray]]) -> None:
    view = views[0]
    assert view["rgb"].shape == (48, 48, 3) and view["rgb"].dtype == np.float32
    assert 0 <= view["rgb"].min() and view["rgb"].max() <= 1
    assert 0 <= view["reshading"].min() and view["reshading"].max() <= 1
    assert view["edge_texture"].min() >= 0 and view["edge_occlusion"].min() >= 0
    assert view["labels"].dtype == np.uint8
    for v in views:
        labels = v["labels"]
        assert ((labels < K) | (labels == formats.IGNORE_INDEX)).all()


# ------------------------------------------------------------------------------------------------ classes


def test_every_class_appears_over_forty_views() -> None:
    seen = np.zeros(K, dtype=bool)
    for i in range(40):
        seen[np.unique(render_view(0, i, SIZE)["labels"])] = True
    assert seen.all(), [c for c, s in zip(SYNTHETIC_CLASSES, seen) if not s]


def test_palette_has_a_distinct_colour_per_class() -> None:
    assert SYNTHETIC_PALETTE.shape == (K, 3) and SYNTHETIC_PALETTE.dtype == np.uint8
    assert len({tuple(c) for c in SYNTHETIC_PALETTE}) == K


def _sampled_families() -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {name: set() for name in SYNTHETIC_CLASSES}
    for s in range(60):
        scene = sample_scene(0, s)
        seen["floor"].add(scene.face_textures[0].family)
        seen["ceiling"].add(scene.face_textures[1].family)
        seen["wall"].update(t.family for t in scene.face_textures[2:])
        for obj in scene.objects:
            seen[SYNTHETIC_CLASSES[obj.label]].add(obj.texture.family)
        for decal in scene.decals:
            seen[SYNTHETIC_CLASSES[decal.label]].add(decal.texture.family)
    return seen


def test_geometry_only_pairs_draw_textures_from_the_same_family() -> None:
    seen = _sampled_families()
    assert all(len(f) == 1 for f in seen.values()), seen
    for a, b in GEOMETRY_ONLY_PAIRS:
        assert seen[a] == seen[b] == {CLASS_FAMILY[a]}
    for a, b in APPEARANCE_ONLY_PAIRS:
        assert seen[a] != seen[b]


def test_appearance_only_pairs_share_geometry() -> None:
    # pillar and bin: vertical cylinders standing on the floor with the same radius/height law
    cyl = {"pillar": [], "bin": []}
    for s in range(80):
        for obj in sample_scene(0, s).objects:
            name = SYNTHETIC_CLASSES[obj.label]
            if name in cyl:
                assert obj.kind == "cylinder" and obj.center[1] == pytest.approx(obj.size[1])
                cyl[name].append(obj.size[0])
    assert min(len(v) for v in cyl.values()) > 20
    assert abs(np.median(cyl["pillar"]) - np.median(cyl["bin"])) < 0.05


def _plane_fit(points: np.ndarray) -> tuple[np.ndarray, float]:
    centre = points.mean(0)
    normal = np.linalg.svd(points - centre)[2][-1]
    return normal, float(normal @ centre)


def test_rug_and_window_pixels_lie_on_the_floor_and_wall_planes() -> None:
    checked = {"rug": 0, "window": 0}
    for i in range(30):
        view = render_view(0, i, 48)
        pts, lab, nrm = _back_project(view), view["labels"], view["normal"]
        for decal, host in (("rug", "floor"), ("window", "wall")):
            dm = lab == SYNTHETIC_CLASSES.index(decal)
            hm = lab == SYNTHETIC_CLASSES.index(host)
            if dm.sum() < 10:
                continue
            # one host plane per distinct decal normal (windows may sit on two walls of one view)
            for normal in np.unique(np.round(nrm[dm], 3), axis=0):
                on = dm & (np.abs(nrm - normal).sum(-1) < 1e-2)
                same = hm & (np.abs(nrm - normal).sum(-1) < 1e-2)
                if on.sum() < 5 or same.sum() < 10:
                    continue
                n, off = _plane_fit(pts[same])
                assert np.abs(pts[same] @ n - off).max() < 1e-3 * pts[same][:, 2].max()  # host is one plane
                assert np.abs(pts[on] @ n - off).max() < 1e-3 * pts[on][:, 2].max()  # decal lies on it
                assert np.abs(nrm[on] - nrm[same][0]).max() < 1e-4  # with the host's normal
                checked[decal] += 1
    assert checked["rug"] >= 3 and checked["window"] >= 3


# ------------------------------------------------------------------------------------------------ on disk


def test_segmentation_layout(rendered: Path) -> None:
    seg = rendered / "segmentation"
    train, val = formats.read_list(seg / "train.txt"), formats.read_list(seg / "val.txt")
    assert [tuple(r) for r in train] == [formats.seg_frame_paths(i) for i in range(N_TRAIN)]
    assert [tuple(r) for r in val] == [formats.seg_frame_paths(N_TRAIN + j) for j in range(N_VAL)]
    for row in train + val:
        for rel, mode in zip(row, ("RGB", "L", "I;16")):
            with Image.open(seg / rel) as im:
                assert im.mode == mode and im.size == (SIZE, SIZE)
    # frame 1 = scene 0, view 1: decoded PNGs equal the float arrays within quantisation
    view = render_view(0, 1, SIZE)
    depth = formats.read_png(seg / "depth/000001.png").astype(np.float64) / formats.DEPTH_SCALE
    np.testing.assert_allclose(depth, view["depth"], atol=0.5 / formats.DEPTH_SCALE + 1e-6)
    np.testing.assert_array_equal(formats.read_png(seg / "masks/000001.png"), view["labels"])
    rgb = formats.read_png(seg / "rgb/000001.png").astype(np.float64) / 255
    np.testing.assert_allclose(rgb, view["rgb"], atol=0.5 / 255 + 1e-6)


def test_translation_layout(rendered: Path) -> None:
    tr = rendered / "translation"
    train = [r[0] for r in formats.read_list(tr / "train.txt")]
    val = [r[0] for r in formats.read_list(tr / "val.txt")]
    assert train[:3] == [formats.taskonomy_template(0, 0), formats.taskonomy_template(0, 1),
                         formats.taskonomy_template(1, 0)]
    assert len(train) == N_TRAIN and len(val) == N_VAL
    points = lambda rows: {int(t.split("point_")[1].split("_")[0]) for t in rows}  # noqa: E731
    assert not points(train) & points(val)  # scene-disjoint split
    modes = {"rgb": "RGB", "normal": "RGB", "reshading": "RGB"}
    for template in train + val:
        for domain in TRANSLATION_OUT_DOMAINS:
            path = tr / template.format(domain=domain)
            with Image.open(path) as im:
                assert im.mode == modes.get(domain, "I;16") and im.size == (SIZE, SIZE)
    view = render_view(0, 2, SIZE)  # point 1, view 0
    name = lambda domain: tr / formats.taskonomy_name(1, 0, domain)  # noqa: E731
    for domain, key in (("depth_zbuffer", "depth"), ("depth_euclidean", "depth_euclidean")):
        decoded = formats.read_png(name(domain)).astype(np.float64)
        assert (decoded != formats.TASKONOMY_DEPTH_INVALID).all()
        np.testing.assert_allclose(decoded / formats.TASKONOMY_DEPTH_SCALE, view[key],
                                   atol=0.5 / formats.TASKONOMY_DEPTH_SCALE + 1e-6)
    normal = formats.read_png(name("normal")).astype(np.float64) / 255 * 2 - 1
    np.testing.assert_allclose(normal, view["normal"], atol=1.0 / 255 + 1e-6)
    reshading = formats.read_png(name("reshading"))
    assert (reshading[..., 0] == reshading[..., 1]).all() and (reshading[..., 1] == reshading[..., 2]).all()
    occ = formats.read_png(name("edge_occlusion")).astype(np.float64)
    np.testing.assert_allclose(occ / EDGE_OCCLUSION_SCALE, view["edge_occlusion"], atol=1 / EDGE_OCCLUSION_SCALE)


def test_meta_json_describes_the_render(rendered: Path) -> None:
    meta = json.loads((rendered / "meta.json").read_text())
    assert meta["classes"] == list(SYNTHETIC_CLASSES)
    assert np.array_equal(np.array(meta["palette"], dtype=np.uint8), SYNTHETIC_PALETTE)
    assert meta["arguments"] == {"size": SIZE, "n_train": N_TRAIN, "n_val": N_VAL, "views_per_scene": VPS,
                                 "seed": 0}
    assert meta["counts"]["train_scenes"] == 3 and meta["counts"]["val_scenes"] == 2
    assert set(meta["encodings"]["translation"]) == set(TRANSLATION_OUT_DOMAINS)


def test_edge_encodings_have_taskonomy_like_magnitudes(rendered: Path) -> None:
    tr = rendered / "translation"
    for domain, lo, hi in (("edge_texture", 2000, 40000), ("edge_occlusion", 2000, 40000)):
        maxima = [formats.read_png(p).max() for p in sorted((tr / domain).glob("*.png"))]
        assert lo < np.median(maxima) < hi, (domain, maxima)
