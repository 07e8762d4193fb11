"""Pen-style measures of white-on-black glyphs (stroke width, ink, edge softness, size, position, slant,
background)
and their comparison, generated vs real, against a real-vs-real floor. Pure numpy, vectorised over a batch.

Every measure is per image; an image without ink (no pixel > 127) gets NaN where the measure is
undefined, and NaNs are dropped before medians and distances.
"""

from __future__ import annotations

from typing import Any

import numpy as np

INK = 127  # a pixel is ink when > INK: the binarisation used for skeleton, coverage and the bounding box
GLYPH = 32  # a pixel belongs to the glyph (ink or its soft edge) when >= GLYPH
SOLID = 224  # ... and is solid pen (not an intermediate grey) when >= SOLID
CLEAR = 3  # background = pixels at least this many px (chessboard distance) from any ink pixel
# Ratios of medians make sense only on a positive scale; slant (around 0 degrees) and background (real DHCD:
# 0, black) are compared by difference.
MEASURES = ("stroke_width", "ink_mass", "ink_coverage", "ink_intensity", "edge_softness",
            "glyph_width", "glyph_height", "centre_x", "centre_y", "background", "slant")
DIFF_MEASURES = ("background", "slant")
RATIO_MEASURES = tuple(m for m in MEASURES if m not in DIFF_MEASURES)
PEN_MEASURES = ("stroke_width", "ink_mass")  # the pen measures judged class by class (off_classes)


def _check(images: np.ndarray) -> np.ndarray:
    """Accept uint8 (N, S, S) or (S, S); return (N, S, S)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim not in (2, 3):
        raise ValueError(f"style measures want uint8 (N, S, S) images, got {images.dtype} {images.shape}")
    return images[None] if images.ndim == 2 else images


def _neighbours(x: np.ndarray) -> list[np.ndarray]:
    """bool (N, H+2, W+2) zero-padded -> the 8 neighbours P2..P9 of each inner pixel, clockwise from north."""
    h, w = x.shape[1] - 2, x.shape[2] - 2
    offsets = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]
    return [x[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in offsets]


def _thinning_table(step: int) -> np.ndarray:
    """bool (256,): whether Zhang-Suen sub-step `step` (0 or 1) deletes an ink pixel whose neighbours P2..P9
    are the bits 0..7 of the index: 2-6 ink neighbours, one 0->1 transition around them, and not both of
    the sub-step's guarded triples inked."""
    table = np.zeros(256, bool)
    for code in range(256):
        p = [(code >> i) & 1 for i in range(8)]
        transitions = sum(1 for i in range(8) if not p[i] and p[(i + 1) % 8])
        p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
        guarded = (p2 and p4 and p6, p4 and p6 and p8) if step == 0 else (p2 and p4 and p8, p2 and p6 and p8)
        table[code] = 2 <= sum(p) <= 6 and transitions == 1 and not any(guarded)
    return table


THINNING = (_thinning_table(0), _thinning_table(1))


def _neighbour_codes(x: np.ndarray) -> np.ndarray:
    """bool (N, H+2, W+2) zero-padded -> uint8 (N, H, W): bit i set where neighbour P(i+2) is ink."""
    code = np.zeros((x.shape[0], x.shape[1] - 2, x.shape[2] - 2), np.uint8)
    for bit, q in enumerate(_neighbours(x)):
        code |= q.view(np.uint8) << bit
    return code


def skeleton(binary: np.ndarray, max_iter: int = 64) -> np.ndarray:
    """bool (N, H, W) -> its one-pixel-wide skeleton, bool (N, H, W) (Zhang-Suen thinning, 1984).

    Each sub-step reads the 8 neighbours as one byte and looks its verdict up in THINNING (the same
    deletions as testing the rules pixel by pixel, in a third of the array passes), and only images
    still thinning are passed again: ~2.3x the rule-by-rule form on DHCD.
    """
    x = np.pad(np.asarray(binary, bool), ((0, 0), (1, 1), (1, 1)))
    active = np.arange(len(x))
    for _ in range(max_iter):
        if len(active) == 0:
            break
        part = x[active]  # a copy: written back below
        inner = part[:, 1:-1, 1:-1]  # a view of it: deleting here deletes in part
        changed = np.zeros(len(active), bool)
        for table in THINNING:
            delete = inner & table[_neighbour_codes(part)]
            changed |= delete.any((1, 2))
            inner &= ~delete
        x[active] = part
        active = active[changed]
    return x[:, 1:-1, 1:-1].copy()


def skeleton_length(skel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """bool (N, H, W) skeleton -> (length, ends), float (N,) each. Length in px: 1 per horizontal/vertical
    link, sqrt(2) per diagonal link that does not cut a corner already joined through orthogonal links.
    Ends: pixels with exactly one skeleton neighbour, a lone pixel counting as two."""
    s = skel
    right = s[:, :, :-1] & s[:, :, 1:]
    down = s[:, :-1, :] & s[:, 1:, :]
    a, b, c, d = s[:, :-1, :-1], s[:, :-1, 1:], s[:, 1:, :-1], s[:, 1:, 1:]  # 2x2 block: a b / c d
    diag = (a & d & ~b & ~c).astype(float) + (b & c & ~a & ~d)
    degree = sum(q.astype(np.uint8) for q in _neighbours(np.pad(s, ((0, 0), (1, 1), (1, 1)))))
    ends = (s & (degree == 1)).sum((1, 2)) + 2 * (s & (degree == 0)).sum((1, 2))
    length = right.sum((1, 2)) + down.sum((1, 2)) + np.sqrt(2) * diag.sum((1, 2))
    return length.astype(float), ends.astype(float)


def stroke_width(mass: np.ndarray, length: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Width w (px) of a pen that lays `mass` px of ink along a skeleton of `length` px with `ends` free ends,
    float (N,) each. Thinning eats about (w + 1) / 2 px of every free end, so mass = w (length + ends (w + 1) / 2);
    the positive root of that quadratic (mass / length without ends). NaN without ink."""
    with np.errstate(invalid="ignore", divide="ignore"):
        p = length + ends / 2
        root = (np.sqrt(p * p + 2 * ends * mass) - p) / np.where(ends > 0, ends, 1)
        return np.where(mass <= 0, np.nan, np.where(ends > 0, root, mass / length))


def _bbox(binary: np.ndarray) -> tuple[np.ndarray, ...]:
    """bool (N, H, W) -> (x0, x1, y0, y1) of the ink, float (N,) each, NaN where there is no ink."""
    n, h, w = binary.shape
    cols, rows = binary.any(1), binary.any(2)
    x0 = np.where(cols.any(1), cols.argmax(1), np.nan)
    x1 = np.where(cols.any(1), w - 1 - cols[:, ::-1].argmax(1), np.nan)
    y0 = np.where(rows.any(1), rows.argmax(1), np.nan)
    y1 = np.where(rows.any(1), h - 1 - rows[:, ::-1].argmax(1), np.nan)
    return x0, x1, y0, y1


def slant_degrees(images: np.ndarray) -> np.ndarray:
    """uint8 (N, S, S) -> (N,) slant from ink moments: atan(-mu11 / mu02) in degrees, positive = the top
    leans right (image y grows downwards); NaN without ink."""
    x = _check(images).astype(float) / 255.0
    _, h, w = x.shape
    mass = x.sum((1, 2))
    ys, xs = np.arange(h, dtype=float)[None, :, None], np.arange(w, dtype=float)[None, None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = (x * ys).sum((1, 2)) / mass
        cx = (x * xs).sum((1, 2)) / mass
        dy, dx = ys - cy[:, None, None], xs - cx[:, None, None]
        mu11, mu02 = (x * dx * dy).sum((1, 2)), (x * dy * dy).sum((1, 2))
        return np.degrees(np.arctan(-mu11 / mu02))


def measure(images: np.ndarray) -> dict[str, np.ndarray]:
    """uint8 (N, S, S) white-on-black -> {measure: float (N,)}, the measures in MEASURES (NaN where undefined).

    stroke_width  ink mass / skeleton length, px (skeleton of the pixels > 127; see stroke_width)
    ink_mass      sum of pixels / 255, px (grey counts fractionally)
    ink_coverage  share of the image's pixels > 127, 0..1
    ink_intensity mean value of the pixels > 127, 0..1 (how saturated the pen is)
    edge_softness share of glyph pixels (>= 32) that are intermediate grey (32..223), 0..1: a blurred
                  stroke has a wider grey fringe around the same solid core
    glyph_width, glyph_height  bounding box of the pixels > 127, px
    centre_x, centre_y         centre of that box, px from the top-left pixel's centre
    background    mean grey level (0-255) of the pixels at least 3 px from any ink pixel: real DHCD is black
                  there (0.01 on the test split); a sampler that leaves a faint haze shows up here
    slant         degrees, see slant_degrees
    """
    images = _check(images)
    binary = images > INK
    n_ink = binary.sum((1, 2))
    mass = images.sum((1, 2), dtype=np.int64) / 255.0
    glyph = (images >= GLYPH).sum((1, 2))
    grey = glyph - (images >= SOLID).sum((1, 2))
    x0, x1, y0, y1 = _bbox(binary)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {
            "stroke_width": np.where(n_ink > 0, stroke_width(mass, *skeleton_length(skeleton(binary))), np.nan),
            "ink_mass": mass,
            "ink_coverage": n_ink / float(images.shape[1] * images.shape[2]),
            "ink_intensity": np.where(n_ink > 0, (images * binary).sum((1, 2), dtype=np.int64) / 255.0 / n_ink, np.nan),
            "edge_softness": np.where(glyph > 0, grey / glyph, np.nan),
            "glyph_width": x1 - x0 + 1, "glyph_height": y1 - y0 + 1,
            "centre_x": (x0 + x1) / 2, "centre_y": (y0 + y1) / 2,
            "background": background_level(images, binary),
            "slant": slant_degrees(images),
        }
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


def _dilate(binary: np.ndarray, radius: int) -> np.ndarray:
    """bool (N, H, W) grown by `radius` px in every direction (a (2r+1)-square max filter, zero outside)."""
    out = binary.copy()
    for axis in (1, 2):
        grown = out.copy()
        for shift in range(1, radius + 1):
            lead = [slice(None)] * 3
            lag = [slice(None)] * 3
            lead[axis], lag[axis] = slice(shift, None), slice(None, -shift)
            grown[tuple(lead)] |= out[tuple(lag)]
            grown[tuple(lag)] |= out[tuple(lead)]
        out = grown
    return out


def background_level(images: np.ndarray, binary: np.ndarray | None = None) -> np.ndarray:
    """uint8 (N, S, S) -> (N,) mean grey level (0-255) of the pixels at least CLEAR px from any pixel > INK;
    NaN where there is no ink (nothing to measure from) or no such pixel."""
    images = _check(images)
    binary = images > INK if binary is None else binary
    clear = ~_dilate(binary, CLEAR)
    count = clear.sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        level = (images * clear).sum((1, 2), dtype=np.int64) / count
    return np.where((count > 0) & binary.any((1, 2)), level, np.nan)


def wasserstein_1d(a: np.ndarray, b: np.ndarray) -> float:
    """Earth mover's distance between two 1-D samples (any sizes; NaNs dropped): the integral of
    |F_a - F_b| over x, exact for the empirical CDFs. NaN if either side is empty."""
    a, b = np.sort(a[~np.isnan(a)]), np.sort(b[~np.isnan(b)])
    if not len(a) or not len(b):
        return float("nan")
    grid = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(a, grid[:-1], side="right") / len(a)
    cdf_b = np.searchsorted(b, grid[:-1], side="right") / len(b)
    return float(np.sum(np.abs(cdf_a - cdf_b) * np.diff(grid)))


def _median(x: np.ndarray) -> float:
    """NaN-dropping median; NaN when nothing is left."""
    x = x[~np.isnan(x)]
    return float(np.median(x)) if len(x) else float("nan")


def _groups(labels: np.ndarray, other: np.ndarray) -> list[int]:
    """Classes to compare: those in both label sets; one pseudo-class (-1) if either is unconditional."""
    if (labels < 0).any() or (other < 0).any():
        return [-1]
    return sorted(set(labels.tolist()) & set(other.tolist()))


def _mask(labels: np.ndarray, c: int) -> np.ndarray:
    """Members of class c; everyone for the pseudo-class -1."""
    return np.ones(len(labels), bool) if c < 0 else labels == c


def compare_measures(gen: dict[str, np.ndarray], gen_labels: np.ndarray, real: dict[str, np.ndarray],
                     real_labels: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per measure: per-class medians, ratio (gen/real) and difference of medians, 1-D Wasserstein distance,
    and their medians over classes. Labels (N,) int; any label -1 compares all images as one class."""
    classes = _groups(np.asarray(gen_labels), np.asarray(real_labels))
    out: dict[str, dict[str, Any]] = {}
    for name in gen:
        g = [gen[name][_mask(gen_labels, c)] for c in classes]
        r = [real[name][_mask(real_labels, c)] for c in classes]
        med_g, med_r = np.array([_median(x) for x in g]), np.array([_median(x) for x in r])
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = med_g / med_r if name in RATIO_MEASURES else np.full(len(classes), np.nan)
        dist = np.array([wasserstein_1d(x, y) for x, y in zip(g, r)])
        out[name] = {"classes": classes, "gen_median": med_g, "real_median": med_r, "ratio": ratio,
                     "diff": med_g - med_r, "wasserstein": dist,
                     "ratio_median": _median(ratio), "diff_median": _median(med_g - med_r),
                     "wasserstein_median": _median(dist)}
    return out


def compare(generated: np.ndarray, gen_labels: np.ndarray, real: np.ndarray, real_labels: np.ndarray) -> dict[str, dict[str, Any]]:
    """uint8 (N, S, S) generated with labels (N,) vs uint8 (M, S, S) real with labels (M,): see compare_measures."""
    return compare_measures(measure(generated), np.asarray(gen_labels), measure(real), np.asarray(real_labels))


def disjoint_real_sets(real_labels: np.ndarray, gen_labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of two disjoint random real sets, each with the generated set's per-class sizes (all images
    form one class if gen_labels holds -1); a class with too few real images gives half of them to each."""
    rng = np.random.default_rng(seed)
    real_labels, gen_labels = np.asarray(real_labels), np.asarray(gen_labels)
    a, b = [], []
    for c in [-1] if (gen_labels < 0).any() else sorted(set(gen_labels.tolist())):
        pool = np.flatnonzero(_mask(real_labels, c))
        k = min(int(_mask(gen_labels, c).sum()), len(pool) // 2)
        pick = rng.permutation(pool)[:2 * k]
        a.append(pick[:k])
        b.append(pick[k:])
    return np.sort(np.concatenate(a)).astype(int), np.sort(np.concatenate(b)).astype(int)


def percentiles(values: np.ndarray, qs: tuple[int, ...] = (10, 50, 90)) -> dict[str, float]:
    """float (N,) -> {'p10': …, 'p50': …, 'p90': …}, NaNs dropped (NaN if nothing is left)."""
    v = values[~np.isnan(values)]
    return {f"p{q}": float(np.percentile(v, q)) if len(v) else float("nan") for q in qs}


def _log_ratios(compared: dict[str, Any]) -> np.ndarray:
    """|log(ratio)| per class of one compare_measures entry (NaN where the ratio is missing or not positive)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(np.log(np.asarray(compared["ratio"], float)))


def off_classes(got: dict[str, dict[str, Any]], floor: dict[str, dict[str, Any]], chance: dict[str, dict[str, Any]],
                measures: tuple[str, ...] = PEN_MEASURES) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Classes whose generated/real ratio of a pen measure is further from 1 than any class of a real set's.

    All three come from compare_measures against the same large real reference: got = the generated set,
    floor and chance = two small real sets with the generated set's class sizes, kept out of the reference. The
    floor's per-class ratios show how far a real set of these sizes strays in one class by chance; the band is
    1 ± the widest of them (as a log ratio: symmetric in × and ÷). The chance set, judged by the same band, says
    how many classes a generator that writes exactly like DHCD's writers would still have outside it. Returns
    ([{class, measure, ratio}, ...] most off first, {measure: {low, high, real_outside: the chance set's classes
    outside, ratios: [[class, generated/real], ...] for every class, furthest from 1 first (NaN last)]}});
    nothing for one pseudo-class (-1).
    """
    found: list[dict[str, Any]] = []
    bands: dict[str, dict[str, Any]] = {}
    for name in measures:
        ref = _log_ratios(floor[name])
        ref = ref[np.isfinite(ref)]
        if got[name]["classes"] == [-1] or len(ref) < 2:
            continue
        band, dist = float(ref.max()), _log_ratios(got[name])
        gen_off, real_off = dist > band, _log_ratios(chance[name]) > band  # NaN compares False
        order = np.argsort(-np.nan_to_num(dist, nan=-1.0), kind="stable")
        bands[name] = {"low": float(np.exp(-band)), "high": float(np.exp(band)),
                       "real_outside": [int(c) for c, off in zip(chance[name]["classes"], real_off) if off],
                       "ratios": [[int(got[name]["classes"][i]), float(got[name]["ratio"][i])] for i in order]}
        found += [{"class": int(c), "measure": name, "ratio": float(r)}
                  for c, r, off in zip(got[name]["classes"], got[name]["ratio"], gen_off) if off]
    return sorted(found, key=lambda row: -abs(np.log(row["ratio"]))), bands


def pen_off_classes(m_gen: dict[str, np.ndarray], gen_labels: np.ndarray, real: np.ndarray, real_labels: np.ndarray,
                    a: np.ndarray, b: np.ndarray, m_a: dict[str, np.ndarray],
                    m_b: dict[str, np.ndarray]) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """off_classes with the real images outside sets a and b as the reference, a as the floor and b as the chance
    set (measures m_*: see measure). Against a reference of hundreds per class, a class's ratio strays only
    by its own few images: set b alone as the reference would move every ratio of its class together."""
    rest = np.setdiff1d(np.arange(len(real)), np.concatenate([a, b]))
    m_ref = measure(real[rest])
    pick = lambda m: {name: m[name] for name in PEN_MEASURES}  # noqa: E731
    ref_labels = real_labels[rest]
    return off_classes(compare_measures(pick(m_gen), gen_labels, m_ref, ref_labels),
                       compare_measures(pick(m_a), real_labels[a], m_ref, ref_labels),
                       compare_measures(pick(m_b), real_labels[b], m_ref, ref_labels))


def style_comparison(generated: np.ndarray, gen_labels: np.ndarray, real: np.ndarray, real_labels: np.ndarray,
                     seed: int, per_class: bool = True) -> dict[str, Any]:
    """Generated vs a random real set B with the same per-class sizes, and the floor: another disjoint
    random real set A vs B, compared the same way (what a generator that writes like real DHCD would score).
    Returns {'measures': {name: {ratio_median, diff_median, wasserstein_median, floor_…, gen_median,
    real_median}}, 'stroke_width_percentiles': {'generated': {p10, p50, p90}, 'real': …}, 'compared': …,
    'off_classes': [{class, measure, ratio}, ...] and 'class_band': {measure: {low, high, real_outside, ratios}} (see
    pen_off_classes: A is the floor, B the chance set, the other real images the reference; empty when
    per_class is False, which skips measuring those other images),
    'per_image': {'generated': measures, 'real': measures of B, 'real_index': B's indices}}."""
    gen_labels, real_labels = np.asarray(gen_labels), np.asarray(real_labels)
    a, b = disjoint_real_sets(real_labels, gen_labels, seed)
    m_gen, m_a, m_b = measure(generated), measure(real[a]), measure(real[b])
    got = compare_measures(m_gen, gen_labels, m_b, real_labels[b])
    floor = compare_measures(m_a, real_labels[a], m_b, real_labels[b])
    off, bands = pen_off_classes(m_gen, gen_labels, real, real_labels, a, b, m_a, m_b) if per_class else ([], {})
    keys = ("ratio_median", "diff_median", "wasserstein_median")
    measures = {name: {**{k: got[name][k] for k in keys}, **{"floor_" + k: floor[name][k] for k in keys},
                       "gen_median": _median(m_gen[name]), "real_median": _median(m_b[name])}
                for name in MEASURES}
    return {"measures": measures,
            "stroke_width_percentiles": {"generated": percentiles(m_gen["stroke_width"]),
                                         "real": percentiles(m_b["stroke_width"])},
            "compared": {"generated": int(len(generated)), "real": int(len(b)), "classes": len(got["stroke_width"]["classes"])},
            "off_classes": off, "class_band": bands,
            "per_image": {"generated": m_gen, "real": m_b, "real_index": b}}
