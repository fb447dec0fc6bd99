"""The `real` preset's data on ../shared/data: the FOV crop on the colour-enhanced EyeQ subset, its
equalisation at source, the
splits (stratified, grouped, no photograph on both sides), DrimDB's Outlier flag, and the stand-in's
link back to its clean source photographs. No training here: the preset itself is measured by
`fundus-mtl reproduce --preset real` (results/real/)."""
import glob
from pathlib import Path

import numpy as np
import pytest

from fundus_mtl.config import get_config
from fundus_mtl.datasets import read_class_folders
from fundus_mtl.gradcam import source_photo
from fundus_mtl.images import fov_crop, preprocess, read_image
from fundus_mtl.prepare import dataset_tables

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def test_fov_found_on_the_colour_enhanced_eyeq_subset(shared):
    files = sorted(glob.glob(str(shared / "eyeq-subset256/images/*")))
    crops = {Path(f).name: fov_crop(read_image(f)) for f in files}
    found = sum(c.found for c in crops.values())
    # 1,932 is the data README's count. `found >= 1915` pins current behaviour, not a property of the data: the README
    # says every image is already cropped to its field of view, so each miss is the finder's; fov_crop finds 1,920
    # today (1,862 before the Otsu retry), and the bound lets a change lose at most 5 of them without a test failing
    assert len(files) == 1932 and found >= 1915, found
    # a letterboxed image whose enhanced sensor noise touched the disc: the crop drops the black bands
    c = crops["10321_right.jpeg"]
    assert c.found and 70 < c.radius < 100 and c.image.shape[0] < 200, (c.radius, c.image.shape)



def test_eyeq_subset_is_equalised_at_source_and_clean_photos_are_not(shared):
    # why the real preset sets equalize=True: equalising an EyeQ-subset image again barely changes it
    # (mean |difference| a few grey levels of 255), while a natural photograph changes by 40 and more
    def change(f):
        a, _ = preprocess(f, 160); b, _ = preprocess(f, 160, equalize=True)
        return np.abs(a.astype(int) - b).mean()
    eyeq = [change(f) for f in sorted(glob.glob(str(shared / "eyeq-subset256/images/*")))[::40]]
    clean = [change(f) for f in sorted(glob.glob(str(shared / "clean/*/*")))[::5]]
    assert len(eyeq) == 49 and np.median(eyeq) < 6 and np.percentile(eyeq, 90) < 8, np.percentile(eyeq, [50, 90])
    assert len(clean) >= 20 and min(clean) > 30, min(clean)

def test_drimdb_fov_and_outlier_flag(shared):
    found = {k: [fov_crop(read_image(f)).found for f in sorted(glob.glob(str(shared / f"drimdb/{k}/*.jpg")))] for k in ("Good", "Bad")}
    assert all(found["Good"]) and len(found["Good"]) == 125   # the README's 125 good images: every one has a disc
    # pins current behaviour: the disc is found on 65 of the README's 69 bad images today (over-exposed or blank bad
    # images have no disc to find, so not all 69 can be asked for); the bound allows a change to lose 5 of them
    assert len(found["Bad"]) == 69 and sum(found["Bad"]) >= 60, sum(found["Bad"])
    bad, drop = read_class_folders(shared / "drimdb", outliers="bad"), read_class_folders(shared / "drimdb", outliers="drop")
    assert (len(bad), len(drop)) == (216, 194)
    assert (bad.overall == 0).sum() == 69 + 22 and (drop.overall == 0).sum() == 69


@pytest.fixture(scope="module")
def real_tables(tmp_path_factory):
    if not SHARED.is_dir(): pytest.skip(f"real data not present at {SHARED}")
    # the MSHF stand-in is built in a temporary folder: a cache in the project's data/ is keyed by the config, not by
    # the code, so a reused checkout would check variants that older code made
    cfg = get_config("real", data_root=str(SHARED), data_dir=str(tmp_path_factory.mktemp("data")))
    return cfg, dataset_tables(cfg)


def test_real_splits(real_tables):
    cfg, t = real_tables
    assert set(t) == {"detail", "eyeq", "deepdrid"}             # no EyeQ-D-like set on real data
    for name, df in t.items():
        assert df.groupby("group")["split"].nunique().max() == 1, name      # no group on both sides
    e = t["eyeq"]
    share = e.split.value_counts(normalize=True)
    assert 0.19 <= share["test"] <= 0.22 and share["val"] > 0.05
    by_class = e.groupby("overall")["split"].apply(lambda s: (s == "test").mean())
    assert by_class.between(0.17, 0.23).all(), by_class          # stratified: every class ~20 % in test
    d = t["detail"]
    assert len(d) == 102 * cfg.variants_per_photo and d.group.nunique() == 102
    test_photos = d[d.split == "test"].group.nunique()
    assert 18 <= test_photos <= 23                               # ~20 % of the 102 photographs, all variants together
    assert 0.15 < (d[["illumination", "clarity", "contrast"]] == 0).mean().mean() < 0.3   # p_bad = 0.2 per detail


def test_standin_images_lead_back_to_their_clean_photographs(real_tables):
    cfg, t = real_tables
    d = t["detail"].drop_duplicates("group")
    photos = {source_photo(Path(cfg.data_root) / "clean", g, s) for g, s in zip(d.group, d.source)}
    assert len(photos) == 102 and all(p.exists() for p in photos)
    a = read_image(sorted(photos)[0])
    assert a.ndim == 3 and a.shape[2] == 3
