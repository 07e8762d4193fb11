"""Archive validation (every bad-input case has its one-line message), prepare, pixel round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from dhcd_fixture import glyph_image, make_archive, png_bytes, write_zip

from devagen.cli import cli
from devagen.core.errors import DevagenError
from devagen.data import prepared as data
from devagen.data.archive import ROOT, validate_archive

KA = f"{ROOT}/Train/character_1_ka"


def _rename_class(members: dict[str, bytes], old: str, new: str) -> None:
    for name in [n for n in members if f"/{old}/" in n]:
        members[name.replace(f"/{old}/", f"/{new}/")] = members.pop(name)


def _drop_class(members: dict[str, bytes]) -> None:
    for name in [n for n in members if "/digit_9/" in n]:
        del members[name]


BAD_CASES = {
    "missing class": (_drop_class, "missing class folder(s) digit_9"),
    "unknown class folder": (lambda m: _rename_class(m, "digit_9", "digit_99"), "unknown class folder 'digit_99'"),
    "unknown split folder": (lambda m: m.update({f"{ROOT}/Valid/digit_0/9.png": b"x"}), "unknown entry"),
    "wrong size": (lambda m: m.update({f"{KA}/900.png": png_bytes(np.zeros((28, 28), np.uint8))}), "size 28x28, expected 32x32"),
    "RGB image": (lambda m: m.update({f"{KA}/901.png": png_bytes(np.zeros((32, 32), np.uint8), "RGB")}), "mode RGB"),
    "undecodable PNG": (lambda m: m.update({f"{KA}/902.png": b"\x89PNG\r\n\x1a\nnot really"}), "not a decodable PNG"),
    "path escape": (lambda m: m.update({"../evil.png": b"x"}), "path escapes the archive"),
    "absolute path": (lambda m: m.update({"/etc/evil.png": b"x"}), "path escapes the archive"),
    "huge member": (lambda m: m.update({f"{KA}/903.png": bytes(2 << 20)}), "absurdly large"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_archive_gets_one_line_naming_the_problem(case: str, tmp_path: Path) -> None:
    mutate, expected = BAD_CASES[case]
    archive = make_archive(tmp_path / "bad.zip", train=1, test=1, mutate=mutate)
    with pytest.raises(DevagenError) as err:
        validate_archive(archive)
    message = str(err.value)
    assert expected in message and "\n" not in message and str(archive) in message


def test_not_a_zip_and_truncated_zip(tmp_path: Path, tiny_archive: Path) -> None:
    text = tmp_path / "notes.zip"
    text.write_text("hello")
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(tiny_archive.read_bytes()[: tiny_archive.stat().st_size // 2])
    for path in (text, truncated):
        with pytest.raises(DevagenError, match="not a zip archive"):
            validate_archive(path)


def test_fetch_cli_bad_input_exits_nonzero_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = make_archive(tmp_path / "bad.zip", train=1, test=1, mutate=_drop_class)
    work = tmp_path / "repo"
    work.mkdir()
    (work / "params.yaml").write_text((Path(__file__).parents[2] / "params.yaml").read_text())
    monkeypatch.chdir(work)
    result = CliRunner().invoke(cli, ["fetch", "--from", str(archive)])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "error:" in result.output and "digit_9" in result.output
    assert not list(work.glob("data/raw/*"))


def test_fetch_without_source_or_network_says_how_to_supply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from devagen.core.config import FetchConfig
    from devagen.data.fetch import fetch_archive

    monkeypatch.delenv("DHCD_ARCHIVE", raising=False)
    cfg = FetchConfig(url="http://127.0.0.1:9/none.zip", retries=1, timeout_s=1)
    with pytest.raises(DevagenError, match="DHCD_ARCHIVE=PATH"):
        fetch_archive(cfg, tmp_path / "raw", progress=False)
    assert list((tmp_path / "raw").iterdir()) == []


def test_fetch_unwraps_outer_zip_and_uses_env(tmp_path: Path, tiny_archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from devagen.core.config import FetchConfig
    from devagen.data.fetch import ARCHIVE_NAME, fetch_archive

    outer = write_zip(tmp_path / "uci.zip", {"DevanagariHandwrittenCharacterDataset.zip": tiny_archive.read_bytes()})
    monkeypatch.setenv("DHCD_ARCHIVE", str(outer))
    path, counts = fetch_archive(FetchConfig(), tmp_path / "raw", progress=False)
    assert path == tmp_path / "raw" / ARCHIVE_NAME and counts == {"Train": 46 * 3, "Test": 46 * 2}
    assert path.read_bytes() == tiny_archive.read_bytes()


def test_missing_local_copy_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from devagen.data.fetch import resolve_source

    monkeypatch.setenv("DHCD_ARCHIVE", "/nowhere/dhcd.zip")
    with pytest.raises(DevagenError, match="DHCD_ARCHIVE=/nowhere/dhcd.zip: no such file"):
        resolve_source(None)


def test_prepare_removes_duplicates_and_leaks(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    twin, leak = png_bytes(glyph_image(0, rng)), png_bytes(glyph_image(1, rng))

    def add_dupes(members: dict[str, bytes]) -> None:
        members[f"{KA}/800.png"] = twin
        members[f"{KA}/801.png"] = twin  # within-train duplicate
        members[f"{ROOT}/Train/character_2_kha/802.png"] = leak
        members[f"{ROOT}/Test/character_2_kha/803.png"] = leak  # train copy of a test image

    prepared = data.prepare(make_archive(tmp_path / "d.zip", 2, 1, mutate=add_dupes), image_size=32)
    assert (prepared.duplicates_within_train, prepared.duplicates_of_test) == (1, 1)
    assert len(prepared.train.labels) == 46 * 2 + 3 - 2 and len(prepared.test.labels) == 46 + 1
    assert prepared.train.images.dtype == np.uint8 and prepared.train.images.shape[1:] == (32, 32)


def test_prepare_resizes_to_64(tiny_archive: Path) -> None:
    prepared = data.prepare(tiny_archive, image_size=64)
    assert prepared.train.images.shape == (46 * 3, 64, 64) and prepared.test.images.shape == (46 * 2, 64, 64)
    assert prepared.train.images.max() > 200  # strokes stay white


def test_save_load_split_round_trip(tmp_path: Path, tiny_archive: Path) -> None:
    split = data.prepare(tiny_archive, 32).test
    data.save_split(split, tmp_path / "test.npz")
    loaded = data.load_split(tmp_path / "test.npz")
    assert np.array_equal(loaded.images, split.images) and np.array_equal(loaded.labels, split.labels)
    with pytest.raises(DevagenError, match="dvc repro prepare"):
        data.load_split(tmp_path / "missing.npz")


def test_pixel_range_round_trip() -> None:
    images = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)
    x = data.to_model_range(images)
    assert x.shape == (1, 1, 16, 16) and x.dtype == torch.float32
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    assert torch.equal(data.from_model_range(x), images)
