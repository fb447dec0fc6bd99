"""Image reading and FOV crop: every real photograph, and a folder of hostile files."""
import glob

import cv2
import numpy as np
import pytest
from PIL import Image

from fundus_mtl.cache import build_cache
from fundus_mtl.images import ImageReadError, fov_crop, read_image
from conftest import disc_image


def test_fov_crop_on_every_real_photograph(shared):
    files = sorted(glob.glob(str(shared / "clean/*/*"))) + sorted(glob.glob(str(shared / "drimdb/*/*")))
    assert len(files) == 102 + 216
    found = {}
    for f in files:
        img = read_image(f)
        c = fov_crop(img)                                     # never raises
        assert c.image.ndim == 3 and c.image.size > 0
        if c.found:
            assert c.image.shape[0] <= img.shape[0] and c.image.shape[1] <= img.shape[1]
        else:
            assert c.image is img and c.reason
        found.setdefault(f.split("/")[-2], []).append(c.found)
    assert all(found["drive"]) and all(found["idrid"]) and all(found["hrf"])   # clean photos: always found
    assert np.mean(found["Good"]) > 0.95                                        # DrimDB good images
    assert np.mean(found["Outlier"]) < np.mean(found["Good"])                   # non-fundus pictures refused more often


@pytest.fixture
def hostile(tmp_path):
    "A folder of the inputs a batch tool meets in practice, with the outcome each must have."
    d = tmp_path
    card = disc_image()
    Image.fromarray(card).save(d / "good.jpg", quality=95)
    (d / "truncated.jpg").write_bytes((d / "good.jpg").read_bytes()[:2000])
    (d / "zero.jpg").write_bytes(b"")
    (d / "text.jpg").write_text("hello, I am not a JPEG")
    Image.fromarray(np.full((1, 1, 3), 128, np.uint8)).save(d / "one_pixel.png")
    Image.fromarray(np.zeros((200, 260, 3), np.uint8)).save(d / "black.png")
    Image.fromarray(card[..., 1]).save(d / "gray.png")
    Image.fromarray(np.dstack([card, np.full(card.shape[:2], 255, np.uint8)])).save(d / "rgba.png")
    cv2.imwrite(str(d / "deep16.png"), card[..., ::-1].astype(np.uint16) * 257)
    noise = (np.random.default_rng(0).random((240, 320, 3)) * 255).astype(np.uint8)
    Image.fromarray(noise).save(d / "not_fundus.png")
    return d


EXPECTED = {  # file -> ("error", reason fragment) or ("ok", fov_found)
    "good.jpg": ("ok", True), "gray.png": ("ok", True), "rgba.png": ("ok", True), "deep16.png": ("ok", True),
    "truncated.jpg": ("error", "truncated"), "zero.jpg": ("error", "empty file"), "text.jpg": ("error", "not an image"),
    "one_pixel.png": ("ok", False), "black.png": ("ok", False), "not_fundus.png": ("ok", False),
}


def test_hostile_files_each_get_their_outcome(hostile):
    for name, (kind, what) in EXPECTED.items():
        if kind == "error":
            with pytest.raises(ImageReadError, match=what):
                read_image(hostile / name)
        else:
            c = fov_crop(read_image(hostile / name))
            assert c.found is what, (name, c.reason)
    assert "too small" in fov_crop(read_image(hostile / "one_pixel.png")).reason
    assert "blank" in fov_crop(read_image(hostile / "black.png")).reason


def test_cache_keeps_the_batch_when_some_files_are_bad(hostile, tmp_path):
    names = sorted(EXPECTED)
    c = build_cache([hostile / n for n in names], 32, tmp_path / "cache", progress=False)
    errors = dict(zip(names, c.info.error))
    for n in names:
        assert (errors[n] != "") == (EXPECTED[n][0] == "error"), n
    good = names.index("good.jpg")
    assert c.ok[good] and c.images[good].mean() > 20       # the good image survived beside the bad ones


def test_huge_image_is_read_and_cropped(tmp_path):
    big = disc_image(8000, 8000, 3900)
    cv2.imwrite(str(tmp_path / "huge.jpg"), big)
    c = fov_crop(read_image(tmp_path / "huge.jpg"))
    assert c.found and abs(c.radius - 3900) < 80
