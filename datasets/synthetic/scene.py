"""Random indoor scenes and camera poses.

World frame: metres, y up; the room is the box [0, width] x [0, height] x [0, depth] (x, y, z). Every quantity of a
scene is drawn from one generator seeded by (seed, scene index), so the scene never depends on the image size, on the
number of views or on worker processes; each camera is drawn from its own (seed, scene, view) generator.

Class design (see docs/synthetic-data.md): pairs that differ only in geometry share a texture family; pairs that
differ only in appearance share a geometry law.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asymfusion.datasets.synthetic.textures import Texture, sample_texture

SYNTHETIC_CLASSES: tuple[str, ...] = (
    "floor", "rug", "wall", "ceiling", "panel", "cabinet", "box", "ball", "pillar", "bin", "window",
)
CLASS_ID = {name: i for i, name in enumerate(SYNTHETIC_CLASSES)}
SYNTHETIC_PALETTE: np.ndarray = np.array(
    [
        [128, 64, 32],  # floor
        [230, 25, 75],  # rug
        [190, 190, 190],  # wall
        [70, 70, 200],  # ceiling
        [245, 130, 48],  # panel
        [128, 128, 0],  # cabinet
        [60, 180, 75],  # box
        [255, 225, 25],  # ball
        [0, 130, 200],  # pillar
        [145, 30, 180],  # bin
        [70, 240, 240],  # window
    ],
    dtype=np.uint8,
)
# class -> texture family (textures.FAMILIES); equal letters = geometry-only pairs
CLASS_FAMILY: dict[str, str] = {
    "floor": "A", "rug": "B", "wall": "C", "ceiling": "C", "panel": "D", "cabinet": "D",
    "box": "E", "ball": "E", "pillar": "F", "bin": "G", "window": "H",
}
GEOMETRY_ONLY_PAIRS: tuple[tuple[str, str], ...] = (("wall", "ceiling"), ("panel", "cabinet"), ("box", "ball"))
APPEARANCE_ONLY_PAIRS: tuple[tuple[str, str], ...] = (("floor", "rug"), ("wall", "window"), ("pillar", "bin"))

# room faces, in this order: index = primitive id of the face in raycast.trace
FACES = ("floor", "ceiling", "wall_x0", "wall_x1", "wall_z0", "wall_z1")


@dataclass(frozen=True)
class Primitive:
    """A solid: 'box' (half extents `size`, rotated by `yaw` about y), 'sphere' (radius size[0]) or 'cylinder'
    (vertical, radius size[0], half height size[1])."""

    kind: str
    label: int
    texture: Texture
    center: tuple[float, float, float]
    size: tuple[float, float, float]
    yaw: float = 0.0


@dataclass(frozen=True)
class Decal:
    """A flush rectangle on a room face (rug on the floor, window on a wall): changes label and texture only.
    `rect` = (u0, u1, v0, v1) in the face's surface coordinates (see raycast.face_uv)."""

    label: int
    face: int
    rect: tuple[float, float, float, float]
    texture: Texture


@dataclass(frozen=True)
class Light:
    position: tuple[float, float, float]
    intensity: float
    color: tuple[float, float, float]


@dataclass(frozen=True)
class Scene:
    width: float
    height: float
    depth: float
    face_textures: tuple[Texture, ...]  # one per FACES entry
    objects: tuple[Primitive, ...]
    decals: tuple[Decal, ...]
    lights: tuple[Light, ...]
    ambient: float
    window_glow: float


@dataclass(frozen=True)
class Camera:
    """Pinhole camera: `rotation` columns are the camera's x (right), y (down), z (forward) axes in world
    coordinates (OpenCV convention); square image with horizontal field of view `fov` (radians)."""

    position: tuple[float, float, float]
    rotation: np.ndarray
    fov: float


def scene_rng(seed: int, scene: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, scene, 0]))


def view_rng(seed: int, scene: int, view: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, scene, view + 1]))


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float], margin: float) -> bool:
    return not (a[1] + margin <= b[0] or b[1] + margin <= a[0] or a[3] + margin <= b[2] or b[3] + margin <= a[2])


def _wall_span(face: int, w: float, d: float) -> float:
    return d if face in (2, 3) else w


def sample_scene(seed: int, scene: int) -> Scene:
    """Draw the room, its furniture, decals and lights of scene `scene`."""
    rng = scene_rng(seed, scene)
    W, D, H = rng.uniform(4.0, 7.0), rng.uniform(4.0, 7.0), rng.uniform(2.5, 3.2)
    wall_tex = sample_texture("C", rng)
    face_textures = (sample_texture("A", rng), sample_texture("C", rng), wall_tex, wall_tex, wall_tex, wall_tex)
    objects: list[Primitive] = []
    decals: list[Decal] = []
    footprints: list[tuple[float, float, float, float]] = []  # (x0, x1, z0, z1) on the floor
    wall_used: dict[int, list[tuple[float, float]]] = {f: [] for f in range(2, 6)}

    def place_on_wall(face: int, width: float, margin: float = 0.15) -> float | None:
        span = _wall_span(face, W, D)
        for _ in range(20):
            a = rng.uniform(0.2, span - 0.2 - width) if span - 0.4 > width else None
            if a is None:
                return None
            if all(a + width + margin <= lo or hi + margin <= a for lo, hi in wall_used[face]):
                wall_used[face].append((a, a + width))
                return a
        return None

    def wall_box(face: int, a: float, width: float, thick: float, y0: float, y1: float) -> tuple[tuple, tuple]:
        """Centre and half extents of an axis-aligned box against wall `face`, spanning [a, a+width] along it."""
        hy, ht, hw = (y1 - y0) / 2, thick / 2, width / 2
        along = a + hw
        if face == 2:
            return (ht, y0 + hy, along), (ht, hy, hw)
        if face == 3:
            return (W - ht, y0 + hy, along), (ht, hy, hw)
        if face == 4:
            return (along, y0 + hy, ht), (hw, hy, ht)
        return (along, y0 + hy, D - ht), (hw, hy, ht)

    # cabinets: boxes against a wall, standing on the floor
    for _ in range(int(rng.integers(0, 3))):
        face, width = int(rng.integers(2, 6)), rng.uniform(0.6, 1.6)
        a = place_on_wall(face, width)
        if a is None:
            continue
        c, h = wall_box(face, a, width, rng.uniform(0.35, 0.6), 0.0, rng.uniform(0.7, 2.0))
        objects.append(Primitive("box", CLASS_ID["cabinet"], sample_texture("D", rng), c, h))
        footprints.append((c[0] - h[0], c[0] + h[0], c[2] - h[2], c[2] + h[2]))
    # panels: thin plates on a wall; windows: flush decals on a wall
    for name in ("panel", "window"):
        for _ in range(int(rng.integers(1, 4))):
            face, width = int(rng.integers(2, 6)), rng.uniform(0.7, 1.8)
            a = place_on_wall(face, width)
            if a is None:
                continue
            y0 = rng.uniform(0.6, 1.2)
            y1 = min(y0 + rng.uniform(0.6, 1.3), H - 0.2)
            if name == "panel":
                c, h = wall_box(face, a, width, rng.uniform(0.03, 0.06), y0, y1)
                objects.append(Primitive("box", CLASS_ID["panel"], sample_texture("D", rng), c, h))
            else:
                decals.append(Decal(CLASS_ID["window"], face, (a, a + width, y0, y1), sample_texture("H", rng)))

    def free_spot(radius: float) -> tuple[float, float] | None:
        for _ in range(30):
            x, z = rng.uniform(0.3 + radius, W - 0.3 - radius), rng.uniform(0.3 + radius, D - 0.3 - radius)
            fp = (x - radius, x + radius, z - radius, z + radius)
            if not any(_overlap(fp, o, 0.1) for o in footprints):
                footprints.append(fp)
                return x, z
        return None

    # free-standing boxes, balls and cylinders
    for _ in range(int(rng.integers(1, 4))):
        half = (rng.uniform(0.2, 0.5), rng.uniform(0.2, 0.5), rng.uniform(0.2, 0.5))
        spot = free_spot(float(np.hypot(half[0], half[2])))
        if spot is not None:
            objects.append(Primitive("box", CLASS_ID["box"], sample_texture("E", rng),
                                     (spot[0], half[1], spot[1]), half, float(rng.uniform(0, np.pi))))
    boxes = [o for o in objects if o.label == CLASS_ID["box"]]
    for _ in range(int(rng.integers(1, 4))):
        r = rng.uniform(0.2, 0.45)
        if boxes and rng.random() < 0.3:  # resting on top of a box
            b = boxes.pop(int(rng.integers(len(boxes))))
            r = min(r, 0.9 * min(b.size[0], b.size[2]))
            centre = (b.center[0], 2 * b.size[1] + r, b.center[2])
        else:
            spot = free_spot(r)
            if spot is None:
                continue
            centre = (spot[0], r, spot[1])
        objects.append(Primitive("sphere", CLASS_ID["ball"], sample_texture("E", rng), centre, (r, r, r)))
    for name, family in (("pillar", "F"), ("bin", "G")):
        for _ in range(int(rng.integers(0, 3))):
            # pillar and bin: the SAME geometry law (appearance-only pair)
            r = rng.uniform(0.15, 0.35)
            tall = H if rng.random() < 0.5 else rng.uniform(0.5, 1.2)
            spot = free_spot(r)
            if spot is not None:
                objects.append(Primitive("cylinder", CLASS_ID[name], sample_texture(family, rng),
                                         (spot[0], tall / 2, spot[1]), (r, tall / 2, r)))
    # rug: flush decal on the floor (may lie under furniture)
    for _ in range(int(rng.choice(3, p=[0.1, 0.6, 0.3]))):
        rw, rd = rng.uniform(1.4, 3.0), rng.uniform(1.0, 2.4)
        x0, z0 = rng.uniform(0.3, max(0.31, W - 0.3 - rw)), rng.uniform(0.3, max(0.31, D - 0.3 - rd))
        decals.append(Decal(CLASS_ID["rug"], 0, (x0, x0 + rw, z0, z0 + rd), sample_texture("B", rng)))
    # lights below the ceiling, outside every footprint
    lights: list[Light] = []
    for _ in range(int(rng.integers(1, 3))):
        for _ in range(30):
            x, z = rng.uniform(0.5, W - 0.5), rng.uniform(0.5, D - 0.5)
            if not any(o[0] - 0.1 < x < o[1] + 0.1 and o[2] - 0.1 < z < o[3] + 0.1 for o in footprints):
                break
        tint = rng.uniform(-0.12, 0.12)
        lights.append(Light((x, H - rng.uniform(0.15, 0.5), z), float(rng.uniform(0.5, 1.0)),
                            (1.0 + tint, 1.0, 1.0 - tint)))
    return Scene(W, H, D, face_textures, tuple(objects), tuple(decals), tuple(lights),
                 ambient=float(rng.uniform(0.12, 0.35)), window_glow=float(rng.uniform(0.2, 0.5)))


def look_rotation(forward: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """Camera-to-world rotation (columns right, down, forward) for a world y-up frame."""
    f = forward / np.linalg.norm(forward)
    r = np.cross(f, np.array([0.0, 1.0, 0.0]))
    r /= np.linalg.norm(r)
    d = np.cross(f, r)
    cr, sr = np.cos(roll), np.sin(roll)
    r, d = cr * r + sr * d, -sr * r + cr * d
    return np.stack([r, d, f], axis=1)


def sample_camera(scene: Scene, seed: int, scene_index: int, view: int) -> Camera:
    """A camera inside the room, clear of furniture, looking roughly at an object or a wall."""
    rng = view_rng(seed, scene_index, view)
    W, D, H = scene.width, scene.depth, scene.height
    feet = [(o.center[0], o.center[2], max(o.size[0], o.size[2]) * (1.42 if o.kind == "box" else 1.0))
            for o in scene.objects]
    pos, best = np.array([W / 2, 1.4, D / 2]), -np.inf
    for _ in range(100):  # first candidate 0.4 m clear of every footprint, else the clearest one
        p = np.array([rng.uniform(0.5, W - 0.5), rng.uniform(1.0, 1.8), rng.uniform(0.5, D - 0.5)])
        clearance = min((np.hypot(p[0] - x, p[2] - z) - r for x, z, r in feet), default=np.inf)
        if clearance > best:
            pos, best = p, clearance
        if clearance > 0.4:
            break
    target = None
    for _ in range(30):
        if scene.objects and rng.random() < 0.75:
            target = np.array(scene.objects[int(rng.integers(len(scene.objects)))].center, dtype=float)
        else:
            target = np.array([rng.uniform(0, W), rng.uniform(0.5, 2.0), rng.uniform(0, D)])
        if np.hypot(*(target - pos)[[0, 2]]) > 1.2:
            break
    assert target is not None
    fwd = target - pos
    yaw = np.arctan2(fwd[0], fwd[2]) + rng.normal(0, 0.15)
    pitch = np.clip(np.arctan2(fwd[1], np.hypot(fwd[0], fwd[2])) + rng.normal(0, 0.08), -0.6, 0.2)
    forward = np.array([np.cos(pitch) * np.sin(yaw), np.sin(pitch), np.cos(pitch) * np.cos(yaw)])
    rot = look_rotation(forward, roll=float(rng.normal(0, 0.04)))
    return Camera(tuple(pos), rot, fov=float(np.deg2rad(rng.uniform(55, 75))))
