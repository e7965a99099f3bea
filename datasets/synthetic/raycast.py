"""Vectorised ray casting against the scene's primitives: nearest hit (z-buffer), normals, surface coordinates.

Primitive ids: 0..5 are the room faces (scene.FACES order), 6 + k is scene.objects[k]. Rays start inside the room,
so the room is hit by the exit point of the ray from its box and every ray hits something. Ray directions need not be
unit: with camera rays of the form R @ ((u-cx)/f, (v-cy)/f, 1) the hit parameter t is the z-buffer depth itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asymfusion.datasets.synthetic.scene import Primitive, Scene

N_FACES = 6
_EPS = 1e-6


@dataclass
class Hits:
    t: np.ndarray  # (N,) ray parameter of the nearest hit
    prim: np.ndarray  # (N,) int primitive id
    aux: np.ndarray  # (N,) int: box face axis 0..2 / cylinder part (0 side, 1 cap)
    point: np.ndarray  # (N, 3) world hit point


def _safe(d: np.ndarray) -> np.ndarray:
    return np.where(np.abs(d) < 1e-12, np.where(d < 0, -1e-12, 1e-12), d)


def intersect_room(o: np.ndarray, d: np.ndarray, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Exit distance and face id of rays that start inside the room box."""
    hi = np.array([scene.width, scene.height, scene.depth])
    dd = _safe(d)
    bound = np.where(dd > 0, hi, 0.0)
    ts = (bound - o) / dd  # (N, 3), all positive for inside origins
    axis = np.argmin(ts, axis=1)
    t = np.take_along_axis(ts, axis[:, None], axis=1)[:, 0]
    positive = np.take_along_axis(dd, axis[:, None], axis=1)[:, 0] > 0
    # axis 1 (y): floor = 0 (d<0), ceiling = 1; axis 0 (x): 2 / 3; axis 2 (z): 4 / 5
    face = np.where(axis == 1, positive.astype(int), np.where(axis == 0, 2, 4) + positive)
    return t, face


def _yaw_matrix(yaw: float) -> np.ndarray:
    """Local-to-world rotation about y."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def intersect(prim: Primitive, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entry distance (inf on a miss) and auxiliary part id of rays against one primitive."""
    c = np.asarray(prim.center)
    n = len(d)
    if prim.kind == "box":
        rot = _yaw_matrix(prim.yaw)
        p = (o - c) @ rot  # world -> local (rot orthonormal)
        dl = _safe(d @ rot)
        h = np.asarray(prim.size)
        t1, t2 = (-h - p) / dl, (h - p) / dl
        tnear, tfar = np.minimum(t1, t2), np.maximum(t1, t2)
        axis = np.argmax(tnear, axis=1)
        t0 = np.take_along_axis(tnear, axis[:, None], axis=1)[:, 0]
        t1m = tfar.min(axis=1)
        hit = (t0 <= t1m) & (t0 > _EPS)
        return np.where(hit, t0, np.inf), axis
    if prim.kind == "sphere":
        r = prim.size[0]
        oc = o - c
        a = np.einsum("ij,ij->i", d, d)
        b = np.einsum("ij,ij->i", oc, d) if oc.ndim == 2 else d @ oc
        cc = np.einsum("ij,ij->i", oc, oc) if oc.ndim == 2 else float(oc @ oc)
        disc = b * b - a * (cc - r * r)
        t = (-b - np.sqrt(np.maximum(disc, 0))) / a
        return np.where((disc >= 0) & (t > _EPS), t, np.inf), np.zeros(n, dtype=int)
    if prim.kind == "cylinder":
        r, hh = prim.size[0], prim.size[1]
        oc = np.broadcast_to(o - c, d.shape)
        a = d[:, 0] ** 2 + d[:, 2] ** 2
        b = oc[:, 0] * d[:, 0] + oc[:, 2] * d[:, 2]
        cc = oc[:, 0] ** 2 + oc[:, 2] ** 2 - r * r
        disc = b * b - np.maximum(a, 1e-18) * cc
        ts = (-b - np.sqrt(np.maximum(disc, 0))) / np.maximum(a, 1e-18)
        ys = oc[:, 1] + ts * d[:, 1]
        side = np.where((disc >= 0) & (ts > _EPS) & (np.abs(ys) <= hh), ts, np.inf)
        dy = _safe(d[:, 1])
        tc = (hh - oc[:, 1]) / dy  # top cap only: cylinders stand on the floor
        xc, zc = oc[:, 0] + tc * d[:, 0], oc[:, 2] + tc * d[:, 2]
        cap = np.where((oc[:, 1] > hh) & (tc > _EPS) & (xc * xc + zc * zc <= r * r), tc, np.inf)
        return np.minimum(side, cap), (cap < side).astype(int)
    raise ValueError(f"unknown primitive kind {prim.kind!r}")


def trace(scene: Scene, o: np.ndarray, d: np.ndarray) -> Hits:
    """Nearest hit of each ray (origin o (3,) or (N,3), direction d (N,3)) among room faces and objects."""
    t, face = intersect_room(np.broadcast_to(o, d.shape), d, scene)
    prim = face.astype(np.int64)
    aux = np.zeros(len(d), dtype=np.int64)
    for k, obj in enumerate(scene.objects):
        tk, ak = intersect(obj, o, d)
        closer = tk < t
        t = np.where(closer, tk, t)
        prim = np.where(closer, N_FACES + k, prim)
        aux = np.where(closer, ak, aux)
    return Hits(t, prim, aux, o + t[:, None] * d)


def occluded(scene: Scene, o: np.ndarray, d: np.ndarray) -> np.ndarray:
    """True where an object lies strictly between o and o + d (shadow rays; the room itself cannot occlude)."""
    blocked = np.zeros(len(d), dtype=bool)
    for obj in scene.objects:
        tk, _ = intersect(obj, o, d)
        blocked |= tk < 1.0 - 1e-4
    return blocked


FACE_NORMALS = np.array([[0, 1, 0], [0, -1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, 1], [0, 0, -1]], dtype=float)


def face_uv(face: int, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Surface coordinates (metres) on a room face: floor/ceiling (x, z); x-walls (z, y); z-walls (x, y)."""
    if face in (0, 1):
        return p[:, 0], p[:, 2]
    if face in (2, 3):
        return p[:, 2], p[:, 1]
    return p[:, 0], p[:, 1]


def surface(scene: Scene, prim_id: int, p: np.ndarray, d: np.ndarray, aux: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World normals (facing the ray) and surface coordinates (u, v) in metres of hits on primitive `prim_id`."""
    if prim_id < N_FACES:
        n = np.broadcast_to(FACE_NORMALS[prim_id], p.shape).copy()
        u, v = face_uv(prim_id, p)
        return n, u, v
    obj = scene.objects[prim_id - N_FACES]
    c = np.asarray(obj.center)
    q = p - c
    if obj.kind == "box":
        rot = _yaw_matrix(obj.yaw)
        ql, dl = q @ rot, d @ rot
        nl = np.zeros_like(ql)
        rows = np.arange(len(p))
        nl[rows, aux] = -np.sign(dl[rows, aux])
        n = nl @ rot.T
        # the two local axes other than the face axis, plus an offset per face so faces differ
        other = np.array([[1, 2], [0, 2], [0, 1]])[aux]
        u = ql[rows, other[:, 0]] + 3.0 * aux
        v = ql[rows, other[:, 1]]
        return n, u, v
    if obj.kind == "sphere":
        r = obj.size[0]
        n = q / np.linalg.norm(q, axis=1, keepdims=True)
        u = r * np.arctan2(n[:, 0], n[:, 2])
        v = r * np.arcsin(np.clip(n[:, 1], -1, 1))
        return n, u, v
    r = obj.size[0]
    side = aux == 0
    n = np.where(side[:, None], np.stack([q[:, 0], np.zeros(len(q)), q[:, 2]], axis=1) / r, [0.0, 1.0, 0.0])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    u = np.where(side, r * np.arctan2(q[:, 0], q[:, 2]), q[:, 0])
    v = np.where(side, q[:, 1], q[:, 2] + 5.0)
    return n, u, v


def shade_geometry(scene: Scene, hits: Hits, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normals (N,3) and surface coordinates u, v (N,) for every hit."""
    n = np.zeros_like(hits.point)
    u = np.zeros(len(d))
    v = np.zeros(len(d))
    for pid in np.unique(hits.prim):
        m = hits.prim == pid
        nn, uu, vv = surface(scene, int(pid), hits.point[m], d[m], hits.aux[m])
        n[m], u[m], v[m] = nn, uu, vv
    # normals face the viewer (thin plates and caps can be seen from either side)
    flip = np.einsum("ij,ij->i", n, d) > 0
    n[flip] *= -1
    return n, u, v


def lambert(scene: Scene, points: np.ndarray, normals: np.ndarray, shadows: bool = True
            ) -> tuple[np.ndarray, np.ndarray]:
    """Ambient + point-light Lambertian shading with cast shadows: grey (N,) and light-tinted RGB (N,3)."""
    grey = np.full(len(points), scene.ambient)
    rgb = np.full((len(points), 3), scene.ambient)
    start = points + 1e-4 * normals
    for light in scene.lights:
        to_l = np.asarray(light.position) - start
        dist = np.linalg.norm(to_l, axis=1)
        cos = np.maximum(np.einsum("ij,ij->i", normals, to_l) / np.maximum(dist, 1e-9), 0.0)
        term = light.intensity * cos / (1.0 + (dist / 3.0) ** 2) * 1.6
        if shadows:
            lit = cos > 0
            if lit.any():
                blocked = occluded(scene, start[lit], to_l[lit])
                idx = np.flatnonzero(lit)[blocked]
                term[idx] = 0.0
        grey += term
        rgb += term[:, None] * np.asarray(light.color)[None, :]
    return grey, rgb
