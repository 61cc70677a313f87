"""Distillation: teacher pipeline -> distillation loss -> pruning -> student pipeline.

    loss.py        the KD loss and router matching (pure torch)
    config.py      the [distill] settings; the student config is package data (student.cfg)
    prune.py       the pruning policy: what to keep, from measured usage (the cutting is
                   ml/torch/pruning.py)
    transfer.py    seeding the student with the teacher's weights (torch; hashing read from the model)
    data.py        documents, cached model inputs, the teacher's pass
    pipelines.py   loading the teacher, building / rebuilding / saving the student
    evaluate.py    params, disk size, words/s, macro-F1
    trainer.py     ``distill()``, the whole run
    quantize.py    optional int8 dynamic quantisation of a loaded pipeline (CPU)
"""
from __future__ import annotations

from .config import DistillSettings, PruneSettings, load_student_config, student_config_text
from .trainer import DistillResult, distill

__all__ = ["DistillResult", "DistillSettings", "PruneSettings", "distill", "load_student_config",
           "student_config_text"]
