"""The registry's first claim, proved end to end: a task-B setting that is one `register_setting` call (here a toy
two-class setting that reads the synthetic DeepDRiD-like folder under a new name) runs through the data, Teacher,
student and evaluation stages of a small `tiny` run — tables, pseudo-labels, predictions — with no other change."""
import pandas as pd
import pytest

from fundus_mtl.config import CLASS_NAMES, get_config
from fundus_mtl.evaluation import detail_set_predictions, setting_predictions, table2, table3, table4
from fundus_mtl.prepare import prepare_data
from fundus_mtl.registry import SETTINGS, Setting, get_setting, register_setting
from fundus_mtl.rundir import RunDir
from fundus_mtl.student import train_students
from fundus_mtl.teacher import train_teacher, write_teacher_outputs

SMALL = dict(image_size=32, synth_size=64, n_detail=80, n_eyeq_train=48, n_eyeq_test=24, n_eyeqd=32,
             n_deepdrid=(40, 16, 20), bootstrap=50, epochs_teacher=2, epochs_st=2, epochs_mt=2, lambda_grid=((1.0, 1.0),))


@pytest.fixture
def toy():
    "A two-class setting named `toy`, registered for the test only."
    s = register_setting(Setting("toy", "Toy", CLASS_NAMES[2], readers={"synthetic": get_setting("deepdrid").readers["synthetic"]}))
    yield s
    SETTINGS.pop("toy")


def test_a_registered_two_class_setting_runs_the_stages_end_to_end(toy, tmp_path):
    cfg = get_config("tiny", run_dir=str(tmp_path / "run"), data_dir=str(tmp_path / "data"), settings=("toy",), **SMALL)
    manifest = prepare_data(cfg, progress=False)
    assert "toy" in manifest and "deepdrid" not in manifest and manifest["toy"]["images"] == sum(SMALL["n_deepdrid"])
    write_teacher_outputs(cfg, train_teacher(cfg, progress=False).model)
    run = RunDir(cfg.run_dir)
    pl = pd.read_csv(run.pseudo_labels)
    assert set(pl["set"]) == {"toy"} and len(pl) == sum(SMALL["n_deepdrid"])

    res = train_students(cfg, "toy", progress=False)
    assert set(res["val_f1"]) == {"st", "mt", "st_ext"}
    preds = {"toy": setting_predictions(cfg, "toy")}
    for m in ("st", "mt", "st_ext"):
        p = preds["toy"][m]
        assert len(p) == SMALL["n_deepdrid"][2] and {"p_bad", "p_good"} <= set(p.columns), m   # the setting's two classes

    long2, wide2 = table2(cfg, preds)
    assert set(long2["setting"]) == {"toy"} and set(long2["model"]) >= {"ST", "MT", "ST-extended"}
    assert long2["value"].between(0, 1).all() and (long2["n"] == SMALL["n_deepdrid"][2]).all()
    assert table3(cfg, preds)[0].empty                  # Table 3 is for three-class settings only
    long4, _ = table4(cfg, detail_set_predictions(cfg))
    assert set(long4["model"]) == {"Teacher-A", "MT-Toy"}   # the new setting's MT scored on the detail sets under its title
