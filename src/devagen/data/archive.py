"""The DHCD zip in its official UCI layout: opened, indexed and decoded with every member checked (paths,
sizes, classes, PNGs), so fetch can validate an archive before it lands and prepare can read one."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..core.classes import CLASS_NAMES
from ..core.errors import DevagenError

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
