"""benchmarks/distill.py: the baseline student's training budget."""
from __future__ import annotations

import math

import pytest

from tests.test_speed_benchmark import _load


def test_the_baseline_gets_the_students_steps_under_the_students_overrides() -> None:
    from spacy_sparse_expert.distill import DistillSettings, load_student_config

    distill = _load("distill")
    shipped = DistillSettings.from_config(load_student_config(distill.STUDENT_CONFIG))
    assert shipped.augment_crops > 0  # so that the two cases below differ
    factor = 1 + shipped.augment_crops
    default = distill.no_teacher_overrides(distill.STUDENT_CONFIG)
    assert default["distill.epochs"] == shipped.epochs * factor
    assert default["distill.prune.finetune_epochs"] == shipped.prune.finetune_epochs * factor
    # a student run without crops trains for its epochs alone: so does its baseline
    no_crops = distill.no_teacher_overrides(distill.STUDENT_CONFIG, {"distill.augment_crops": 0, "distill.epochs": 3})
    assert no_crops["distill.epochs"] == 3
    assert no_crops["distill.prune.finetune_epochs"] == shipped.prune.finetune_epochs
    assert no_crops["distill.alpha"] == 0.0 and no_crops["distill.init_from_teacher"] is False
    # 100 labelled documents and 1,453 unlabelled ones: the student's epoch is 15.53 of the
    # baseline's, so the baseline gets that many times its epochs (rounded up)
    small = distill.no_teacher_overrides(distill.STUDENT_CONFIG, {"distill.augment_crops": 0, "distill.epochs": 4},
                                         n_labelled=100, n_unlabelled=1453)
    assert small["distill.epochs"] == 63  # ceil(4 * 1553 / 100)
    assert small["distill.prune.finetune_epochs"] == math.ceil(shipped.prune.finetune_epochs * 15.53)


GOLD = ["a", "b", "c", "a", "b", "c", "a", "b"]


def _run(path, seed: int, student: list, baseline: list, teacher: list = GOLD[:6] + ["b", "a"], **overrides):
    import json

    setup = {"train_set": "train", "unlabelled": None, "teacher": "t/model-best",
             "student_overrides": {**({"distill.seed": seed} if seed else {}), **overrides}}
    data = {"teacher": {"predictions": teacher}, "student": {"predictions": student},
            "student_no_teacher": {"predictions": baseline}, "setup": setup}
    path.write_text(json.dumps(data), encoding="utf8")
    return path


def test_seed_summary_averages_the_seeds_and_pairs_them_with_the_teacher(tmp_path) -> None:
    seeds = _load("distill_seeds")
    stats = _load("stats")
    wrong_once = ["b"] + GOLD[1:]
    files = [_run(tmp_path / "s0.json", 0, GOLD, wrong_once), _run(tmp_path / "s1.json", 1, wrong_once, wrong_once)]
    group = seeds.summarize("x", files, GOLD)
    labels = ["a", "b", "c"]
    assert group["seeds"] == [0, 1]
    assert group["student"]["macro_f1"] == [1.0, stats.macro_f1(GOLD, wrong_once, labels)]
    assert group["student"]["mean"] == sum(group["student"]["macro_f1"]) / 2
    assert group["student_no_teacher"]["std"] == 0.0
    teacher_f1 = stats.macro_f1(GOLD, GOLD[:6] + ["b", "a"], labels)
    assert group["teacher"]["macro_f1"] == teacher_f1
    assert group["student_minus_teacher"]["difference"] == group["student"]["mean"] - teacher_f1
    assert group["student_minus_no_teacher"]["difference"] == pytest.approx(
        group["student"]["mean"] - group["student_no_teacher"]["mean"])
    assert group["setup"]["student_overrides"] == {}


@pytest.mark.parametrize("problem", ["teacher", "settings", "predictions", "seed"])
def test_seed_summary_refuses_runs_that_differ_in_more_than_the_seed(tmp_path, problem: str) -> None:
    import json

    seeds = _load("distill_seeds")
    first = _run(tmp_path / "s0.json", 0, GOLD, GOLD)
    second = _run(tmp_path / "s1.json", 0 if problem == "seed" else 1, GOLD, GOLD,
                  **({"distill.alpha": 0.2} if problem == "settings" else {}),
                  **({"teacher": GOLD} if problem == "teacher" else {}))
    if problem == "predictions":
        data = json.loads(second.read_text(encoding="utf8"))
        del data["student"]["predictions"]
        second.write_text(json.dumps(data), encoding="utf8")
    with pytest.raises(SystemExit, match={"teacher": "teacher predicts differently", "settings": "differ from",
                                          "predictions": "no test predictions for student",
                                          "seed": "repeat"}[problem]):
        seeds.summarize("x", [first, second], GOLD)
