"""Integration on the real DHCD archive; runs only when DHCD_ARCHIVE points at it (CI sets it)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from devagen.data import prepared as data

ARCHIVE = os.environ.get("DHCD_ARCHIVE")


@pytest.mark.realdata
@pytest.mark.skipif(not ARCHIVE or not Path(ARCHIVE).is_file(), reason="set DHCD_ARCHIVE to the real DHCD zip")
def test_real_archive_prepares_to_the_documented_counts() -> None:
    prepared = data.prepare(Path(ARCHIVE), image_size=32)
    assert len(prepared.test.labels) == 13_800 and len(prepared.train.labels) == 78_175
    assert (prepared.duplicates_within_train, prepared.duplicates_of_test) == (20, 5)
    assert np.bincount(prepared.test.labels).tolist() == [300] * 46
    assert 0.22 < prepared.train.images.mean() / 255 < 0.26  # README: mean pixel 61.3 / 255
