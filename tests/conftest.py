"""Shared fixtures: the real data (`config.real_data_root()`: ../shared/data beside the project by default) and small image factories."""
from pathlib import Path

import numpy as np
import pytest

from fundus_mtl.config import real_data_root

ROOT = Path(__file__).resolve().parents[1]
SHARED = real_data_root()


@pytest.fixture
def shared():
    "The real data folder; tests that need it skip with a reason on a machine without it."
    if not SHARED.is_dir():
        pytest.skip(f"real data not present at {SHARED} (it sits beside the project in CI)")
    return SHARED


def disc_image(h=300, w=400, r=100, color=(180, 90, 40)):
    "A fundus-like test card: a coloured disc on black."
    yy, xx = np.mgrid[:h, :w]
    img = np.zeros((h, w, 3), np.uint8)
    img[(yy - h / 2) ** 2 + (xx - w / 2) ** 2 <= r * r] = color
    return img
