"""Readers on the real label files in ../shared/data: counts, encodings, refusals."""
import pandas as pd
import pytest

from fundus_mtl.datasets import (read_class_folders, read_deepdrid, read_eyeq, read_eyeq_d, assign_splits,
                                 to_canonical)


def test_eyeq_subset_counts_and_inversion(shared):
    csv = shared / "eyeq-subset256/Label_EyeQ_subset.csv"
    raw = pd.read_csv(csv)["quality"].value_counts().sort_index().tolist()
    assert raw == [1293, 276, 363]                      # EyeQ's encoding: 0 good, 1 usable, 2 reject
    t = read_eyeq(csv)
    assert t.overall.value_counts().sort_index().tolist() == [363, 276, 1293]   # canonical: 0 reject ... 2 good
    assert len(t) == 1932 and all(__import__("os").path.exists(p) for p in t.path)


def test_eyeq_full_label_files(shared):
    tr, te = read_eyeq(shared / "eyeq-labels/Label_EyeQ_train.csv"), read_eyeq(shared / "eyeq-labels/Label_EyeQ_test.csv")
    assert (len(tr), len(te)) == (12543, 16249)
    assert set(tr.split) == {"train"} and set(te.split) == {"test"}
    assert tr.overall.isin([0, 1, 2]).all()


def test_eyeq_d_encoding_is_not_eyeq(shared):
    csv = shared / "eyeq-d/EyeQ-D-Quality-Details.csv"
    t = read_eyeq_d(csv)
    raw = pd.read_csv(csv)
    assert len(t) == 160
    assert t.overall.tolist() == raw.overall_quality.tolist()     # EyeQ-D is already 0 = reject
    assert t.image[0] == raw.file_name[0] + ".jpeg"
    # the same images' EyeQ test labels, read with the EyeQ reader, agree with EyeQ-D's majority on most
    te = read_eyeq(shared / "eyeq-labels/Label_EyeQ_test.csv").set_index("image")
    joined = t.merge(te[["overall"]].rename(columns={"overall": "overall_eyeq"}), left_on="image", right_index=True)
    assert len(joined) == 160
    agree = (joined.overall == joined.overall_eyeq).mean()
    assert agree > 0.6, agree                                       # inverted, agreement would collapse
    with pytest.raises(ValueError, match="not a EyeQ file"):
        read_eyeq(csv)


def test_deepdrid_head_file(shared):
    t = read_deepdrid(shared / "deepdrid-format/regular-fundus-validation.head.csv", root="/data/DeepDRiD")
    assert len(t) == 20 and set(t.split) == {"val"}
    assert t.path[0] == "/data/DeepDRiD/regular-fundus-validation/265/265_l1.jpg"
    assert t.overall.isin([0, 1]).all() and t.group[0] == "265"


def test_drimdb_folders(shared):
    t = read_class_folders(shared / "drimdb")
    assert t.source_class.value_counts().to_dict() == {"Good": 125, "Bad": 69, "Outlier": 22}
    assert t.overall.value_counts().to_dict() == {1: 125, 0: 91}
    assert len(read_class_folders(shared / "drimdb", outliers="drop")) == 194


def test_real_splits_are_stratified_and_grouped(shared):
    t = assign_splits(read_eyeq(shared / "eyeq-subset256/Label_EyeQ_subset.csv").assign(split=pd.NA), 0.1, 0.2, seed=0)
    frac = t.split.value_counts(normalize=True)
    assert 0.18 < frac["test"] < 0.22 and 0.06 < frac["val"] < 0.1
    assert t.groupby("group").split.nunique().max() == 1           # both eyes of a patient together
    by = t.groupby("split").overall.apply(lambda s: s.value_counts(normalize=True).sort_index().round(2).tolist())
    assert abs(by["test"][0] - by["train"][0]) < 0.03              # reject share about equal in train and test


def test_refuses_values_outside_the_encoding(tmp_path):
    p = tmp_path / "Label_EyeQ_test.csv"
    p.write_text(",image,quality,DR_grade\n0,a.jpeg,0,0\n1,b.jpeg,3,0\n")
    with pytest.raises(ValueError, match=r"values \['3'\] are not in the 'eyeq' encoding"):
        read_eyeq(p)
    with pytest.raises(ValueError, match="deepdrid"):
        to_canonical([0, 2], "deepdrid")
