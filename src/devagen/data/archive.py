"""DHCD archive reading and validation, prepared arrays, and pixel-range conversion.

This is the only module where pixel ranges change: uint8 [0, 255] on disk and in the
prepared arrays, float32 [-1, 1] inside networks.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator, Optional

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..core.classes import CLASS_NAMES, glyphs
from ..core.errors import DevagenError
from ..core.integrity import damaged, read_npz

ROOT = "DevanagariHandwrittenCharacterDataset"
SPLITS = ("Train", "Test")
NATIVE_SIZE = 32
MAX_MEMBER_BYTES = 1 << 20  # a 32x32 PNG is ~600 bytes; anything over 1 MiB is not a DHCD image
MAX_MEMBERS = 200_000  # the real archive has 92,095 entries
_CLASS_INDEX = {name: i for i, name in enumerate(CLASS_NAMES)}


@dataclass(frozen=True)
class Member:
    """One image entry of the archive."""

    info: zipfile.ZipInfo
    split: str
    label: int

    @property
    def sort_key(self) -> tuple:
        stem = PurePosixPath(self.info.filename).stem
        return (self.label, int(stem) if stem.isdigit() else 0, stem)


@dataclass(frozen=True)
class Split:
    """Decoded images of one split: uint8 (N, S, S), int64 labels (N,) and, once measured, the pen
    float32 (N, 2): each image's stroke width (px) and slant (degrees), measured by the prepare stage
    (devagen.pen.conditions.measure_pen)."""

    images: np.ndarray
    labels: np.ndarray
    pen: Optional[np.ndarray] = None


def open_zip(path: Path) -> zipfile.ZipFile:
    """Open a zip or raise one line saying why it is not a usable archive."""
    if not path.is_file():
        raise DevagenError(f"{path}: no such file")
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise DevagenError(f"{path}: not a zip archive (or truncated: its central directory is missing); "
                           "download it again") from None


def _check_member_path(name: str, archive: Path) -> PurePosixPath:
    path = PurePosixPath(name)
    if name.startswith(("/", "\\")) or "\\" in name or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise DevagenError(f"{archive}: member {name!r}: path escapes the archive; refusing to read it")
    return path


def index_members(zf: zipfile.ZipFile, archive: Path) -> list[Member]:
    """Check the official layout ROOT/{Train,Test}/<class>/<id>.png and list the images."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise DevagenError(f"{archive}: {len(infos)} entries, more than any DHCD archive ({MAX_MEMBERS}); wrong file?")
    members = []
    for info in infos:
        path = _check_member_path(info.filename, archive)
        if info.is_dir():
            continue
        parts = path.parts
        if len(parts) != 4 or parts[0] != ROOT or parts[1] not in SPLITS or path.suffix.lower() != ".png":
            raise DevagenError(f"{archive}: member {info.filename!r}: unknown entry; expected "
                               f"{ROOT}/{{Train,Test}}/<class>/<id>.png")
        if parts[2] not in _CLASS_INDEX:
            raise DevagenError(f"{archive}: member {info.filename!r}: unknown class folder {parts[2]!r}; "
                               f"expected one of the 46 official names ({CLASS_NAMES[0]} … {CLASS_NAMES[-1]})")
        if info.file_size > MAX_MEMBER_BYTES:
            raise DevagenError(f"{archive}: member {info.filename!r}: {info.file_size} bytes uncompressed, "
                               f"absurdly large for a 32x32 PNG (limit {MAX_MEMBER_BYTES}); refusing to read it")
        members.append(Member(info, parts[1], _CLASS_INDEX[parts[2]]))
    _check_all_classes(members, archive)
    return sorted(members, key=lambda m: (SPLITS.index(m.split), m.sort_key))


def _check_all_classes(members: list[Member], archive: Path) -> None:
    for split in SPLITS:
        present = {m.label for m in members if m.split == split}
        missing = [CLASS_NAMES[i] for i in range(len(CLASS_NAMES)) if i not in present]
        if missing:
            raise DevagenError(f"{archive}: {ROOT}/{split}/ is missing class folder(s) {', '.join(missing[:5])}"
                               f"{' …' if len(missing) > 5 else ''}; the archive is incomplete")


def decode_member(zf: zipfile.ZipFile, member: Member, archive: Path) -> np.ndarray:
    """Read one member as uint8 (32, 32); raise naming the member if it is not a 32x32 gray PNG."""
    name = member.info.filename
    try:
        with zf.open(member.info) as fh:
            raw = fh.read(MAX_MEMBER_BYTES + 1)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DevagenError(f"{archive}: member {name!r}: cannot be read ({exc}); the archive is corrupt") from None
    if len(raw) > MAX_MEMBER_BYTES:
        raise DevagenError(f"{archive}: member {name!r}: larger than {MAX_MEMBER_BYTES} bytes; refusing to read it")
    try:
        with Image.open(io.BytesIO(raw)) as img:
            if img.format != "PNG":
                raise DevagenError(f"{archive}: member {name!r}: is {img.format}, not a PNG")
            if img.mode != "L":
                raise DevagenError(f"{archive}: member {name!r}: mode {img.mode}, expected 8-bit grayscale (L)")
            if img.size != (NATIVE_SIZE, NATIVE_SIZE):
                raise DevagenError(f"{archive}: member {name!r}: size {img.size[0]}x{img.size[1]}, expected 32x32")
            return np.asarray(img, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DevagenError(f"{archive}: member {name!r}: not a decodable PNG ({exc})") from None


def iter_decoded(archive: Path, progress: bool = False) -> Iterator[tuple[Member, np.ndarray]]:
    """Validate the whole archive and yield (member, uint8 (32,32) image) in a stable order."""
    from tqdm import tqdm

    with open_zip(archive) as zf:
        members = index_members(zf, archive)
        for member in tqdm(members, desc="decode", unit="img", disable=not progress, mininterval=1.0):
            yield member, decode_member(zf, member, archive)


def validate_archive(archive: Path, progress: bool = False) -> dict[str, int]:
    """Decode every image once; return image counts per split (raises DevagenError on any problem)."""
    counts = {split: 0 for split in SPLITS}
    for member, _ in iter_decoded(archive, progress):
        counts[member.split] += 1
    return counts


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, H, W) -> uint8 (N, size, size), bicubic; identity when already that size."""
    if images.shape[-1] == size:
        return images
    out = np.empty((len(images), size, size), dtype=np.uint8)
    for i, img in enumerate(images):
        out[i] = np.asarray(Image.fromarray(img).resize((size, size), Image.BICUBIC))
    return out


@dataclass(frozen=True)
class Prepared:
    """Both splits at the target size, and what was removed to make train leak-free."""

    train: Split
    test: Split
    duplicates_within_train: int
    duplicates_of_test: int


def dedupe_train(train_hashes: list[bytes], test_hashes: set[bytes]) -> tuple[np.ndarray, int, int]:
    """Keep-mask for train: drop repeats within train and copies of test images."""
    seen: set[bytes] = set()
    keep = np.ones(len(train_hashes), dtype=bool)
    within = cross = 0
    for i, h in enumerate(train_hashes):
        if h in test_hashes:
            keep[i], cross = False, cross + 1
        elif h in seen:
            keep[i], within = False, within + 1
        seen.add(h)
    return keep, within, cross


def prepare(archive: Path, image_size: int, dedupe: bool = True, progress: bool = False) -> Prepared:
    """Decode the archive once into leak-free train/test arrays at `image_size`."""
    images: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    labels: dict[str, list[int]] = {s: [] for s in SPLITS}
    for member, img in iter_decoded(archive, progress):
        images[member.split].append(img)
        labels[member.split].append(member.label)
    arrays = {s: (np.stack(images[s]), np.asarray(labels[s], dtype=np.int64)) for s in SPLITS}
    keep, within, cross = np.ones(len(arrays["Train"][0]), dtype=bool), 0, 0
    if dedupe:
        digest = lambda a: hashlib.sha1(a.tobytes()).digest()  # noqa: E731
        test_hashes = {digest(a) for a in arrays["Test"][0]}
        keep, within, cross = dedupe_train([digest(a) for a in arrays["Train"][0]], test_hashes)
    train_x, train_y = arrays["Train"]
    test_x, test_y = arrays["Test"]
    train_x, test_x = resize(train_x[keep], image_size), resize(test_x, image_size)
    return Prepared(Split(train_x, train_y[keep]), Split(test_x, test_y), within, cross)


def save_split(split: Split, path: Path) -> None:
    """Write one split as .npz (images, labels, pen if measured, class_names, glyphs) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    pen = {} if split.pen is None else {"pen": split.pen}
    np.savez(tmp, images=split.images, labels=split.labels, **pen,
             class_names=np.asarray(CLASS_NAMES), glyphs=np.asarray(glyphs()))
    tmp.replace(path)


def read_labelled_images(path: Path, stage: str, unlabelled_ok: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """images uint8 (N, S, S) and labels int (N,) in [0, 46) (or -1 if unlabelled_ok) from an .npz written by
    `stage`; a missing, truncated, tampered or malformed file raises one line naming the stage to re-run."""
    arrays = read_npz(path, ("images", "labels"), stage)
    images, labels = arrays["images"], arrays["labels"]
    low = -1 if unlabelled_ok else 0
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1] != images.shape[2] or len(images) == 0:
        raise damaged(path, f"images are {images.dtype} {images.shape}, not uint8 (N, S, S)", stage)
    if labels.dtype.kind not in "iu" or labels.shape != (len(images),):
        raise damaged(path, f"labels are {labels.dtype} {labels.shape}, not integers ({len(images)},)", stage)
    if labels.min() < low or labels.max() >= len(CLASS_NAMES):
        raise damaged(path, f"labels span [{labels.min()}, {labels.max()}], not [{low}, {len(CLASS_NAMES)})", stage)
    return images, labels


def read_pen(path: Path, count: int) -> np.ndarray:
    """The pen measures float32 (count, 2) saved beside a split's images, or DevagenError naming the fix."""
    pen = read_npz(path, ("pen",), "prepare")["pen"]
    if pen.shape != (count, 2) or not np.isfinite(pen).all():
        raise damaged(path, f"pen is {pen.dtype} {pen.shape}, not finite ({count}, 2)", "prepare")
    return pen.astype(np.float32)


def load_split(path: Path) -> Split:
    """Read a split written by save_split; a missing or damaged file says which stage rebuilds it."""
    return Split(*read_labelled_images(path, "prepare"))


def data_stats(prepared: Prepared) -> dict:
    """Counts per split and class, duplicates removed, train pixel mean/std in [0, 1]."""
    def per_class(split: Split) -> dict[str, int]:
        counts = np.bincount(split.labels, minlength=len(CLASS_NAMES))
        return {name: int(c) for name, c in zip(CLASS_NAMES, counts)}

    pixels = prepared.train.images.astype(np.float64) / 255.0
    return {
        "image_size": int(prepared.train.images.shape[-1]),
        "classes": len(CLASS_NAMES),
        "train": int(len(prepared.train.labels)),
        "test": int(len(prepared.test.labels)),
        "duplicates_removed": prepared.duplicates_within_train + prepared.duplicates_of_test,
        "duplicates_within_train": prepared.duplicates_within_train,
        "duplicates_of_test": prepared.duplicates_of_test,
        "pixel_mean": float(pixels.mean()),
        "pixel_std": float(pixels.std()),
        "train_per_class": per_class(prepared.train),
        "test_per_class": per_class(prepared.test),
    }


def grey_histogram(images: np.ndarray, per_image: bool = False) -> np.ndarray:
    """uint8 (N, S, S) -> float64 shares of pixels at each grey level: (256,) over all pixels, or (N, 256) per image
    (each row sums to 1)."""
    flat = np.asarray(images, dtype=np.uint8).reshape(len(images), -1)
    if not per_image:
        return np.bincount(flat.reshape(-1), minlength=256) / max(flat.size, 1)
    offsets = flat.astype(np.int64) + 256 * np.arange(len(flat))[:, None]
    return np.bincount(offsets.reshape(-1), minlength=256 * len(flat)).reshape(len(flat), 256) / max(flat.shape[1], 1)


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 tensor (B, S, S) or (B, 1, S, S) -> float32 (B, 1, S, S) in [-1, 1]."""
    x = images.float() if images.dim() == 4 else images.float().unsqueeze(1)
    return x / 127.5 - 1.0


def from_model_range(x: torch.Tensor) -> torch.Tensor:
    """float tensor (B, 1, S, S) in [-1, 1] (clamped) -> uint8 (B, S, S)."""
    return ((x.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).squeeze(1)
