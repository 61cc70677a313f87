"""Distillation: teacher pipeline -> distillation loss -> pruning -> student pipeline.

    loss.py        the KD loss and router matching (pure torch)
    prune.py       expert / neuron pruning that really shrinks tensors (pure torch)
    transfer.py    seeding the student with the teacher's weights (pure torch)
    data.py        documents, cached model inputs, the teacher's pass
    pipelines.py   loading the teacher, building / rebuilding / saving the student
    evaluate.py    params, disk size, words/s, macro-F1
    trainer.py     ``distill()``, the whole run
    quantize.py    optional int8 dynamic quantisation of a loaded pipeline (CPU)
"""
from __future__ import annotations

from .config import DEFAULT_STUDENT_CONFIG, DistillSettings, PruneSettings, load_student_config
from .trainer import DistillResult, distill

__all__ = ["DEFAULT_STUDENT_CONFIG", "DistillResult", "DistillSettings", "PruneSettings", "distill",
           "load_student_config"]
