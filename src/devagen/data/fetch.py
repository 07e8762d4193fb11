"""Obtain the DHCD archive: a local copy (--from / DHCD_ARCHIVE) or a download, validated before it lands."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from ..core.config import FetchConfig
from ..core.errors import DevagenError
from .archive import MAX_MEMBERS, ROOT, open_zip, validate_archive

ARCHIVE_NAME = "DevanagariHandwrittenCharacterDataset.zip"
ENV_VAR = "DHCD_ARCHIVE"
MAX_INNER_BYTES = 1 << 30  # the inner DHCD zip is ~76 MB; refuse to unpack anything near 1 GiB
HOW_TO_SUPPLY = (f"supply a local copy with `devagen fetch --from PATH` or {ENV_VAR}=PATH "
                 "(the DHCD zip from UCI dataset 389)")


def resolve_source(local: str | None) -> Path | None:
    """The local archive to use (CLI option first, then the environment), or None to download."""
    chosen = local or os.environ.get(ENV_VAR) or None
    if chosen is None:
        return None
    path = Path(chosen).expanduser()
    if not path.is_file():
        origin = "--from" if local else ENV_VAR
        raise DevagenError(f"{origin}={chosen}: no such file; {HOW_TO_SUPPLY}")
    return path


def download(url: str, dest: Path, retries: int, timeout_s: float, sleep: Callable[[float], None] = time.sleep) -> None:
    """Download url to dest with a progress bar, retrying with backoff; one-line error at the end."""
    last = ""
    for attempt in range(1, retries + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as resp, dest.open("wb") as out:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc="download DHCD") as bar:
                    while chunk := resp.read(1 << 20):
                        out.write(chunk)
                        bar.update(len(chunk))
            return
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            last = str(getattr(exc, "reason", exc))
            if attempt < retries:
                sleep(2.0 ** attempt)
    raise DevagenError(f"could not download {url} after {retries} attempt(s) ({last}); {HOW_TO_SUPPLY}")


def unwrap(archive: Path, workdir: Path) -> Path:
    """Return the DHCD zip itself: the archive, or the inner zip when UCI wraps it in an outer one."""
    with open_zip(archive) as zf:
        names = zf.namelist()
        if len(names) > MAX_MEMBERS or any(n.startswith(ROOT + "/") for n in names):
            return archive
        inner = [i for i in zf.infolist() if i.filename.lower().endswith(".zip") and ".." not in i.filename]
        if len(inner) != 1:
            raise DevagenError(f"{archive}: neither the DHCD layout ({ROOT}/Train, {ROOT}/Test) nor a wrapper "
                               "holding one inner zip; is this the DHCD archive?")
        if inner[0].file_size > MAX_INNER_BYTES:
            raise DevagenError(f"{archive}: inner member {inner[0].filename!r} is {inner[0].file_size} bytes "
                               "uncompressed, absurdly large; refusing to unpack it")
        target = workdir / "inner.zip"
        with zf.open(inner[0]) as src, target.open("wb") as dst:
            shutil.copyfileobj(src, dst)
    return target


def fetch_archive(cfg: FetchConfig, dest_dir: Path, local: str | None = None, progress: bool = True) -> tuple[Path, dict]:
    """Put a validated DHCD archive at dest_dir/ARCHIVE_NAME; return its path and image counts.

    Nothing lands in dest_dir unless the whole archive validates (temp file + rename).
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".fetch-") as tmp:
        work = Path(tmp)
        source = resolve_source(local)
        if source is None:
            source = work / "download.zip"
            download(cfg.url, source, cfg.retries, cfg.timeout_s)
        archive = unwrap(source, work)
        counts = validate_archive(archive, progress=progress)
        staged = work / ARCHIVE_NAME
        shutil.copyfile(archive, staged)
        final = dest_dir / ARCHIVE_NAME
        staged.replace(final)
    return final, counts

