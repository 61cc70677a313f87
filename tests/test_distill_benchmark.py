"""benchmarks/distill.py: the baseline student's training budget."""
from __future__ import annotations

import math

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
