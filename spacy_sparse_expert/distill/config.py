"""The student's config and the distillation settings.

The student is described by a normal spaCy training config plus a ``[distill]``
section read here. The shipped one is package data, ``student.cfg`` next to this
module (``configs/distill.cfg`` is a link to it): ``spacy train`` runs it as is (the
same student without a teacher), ``sparse-expert distill`` reads it when no
``--config`` is given, and its ``[distill]`` section is the only place the defaults
of :class:`DistillSettings` are written. The KB and rules of the student always come
from the teacher, so its ``[paths] kb`` / ``rules`` stay null.
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

from thinc.api import Config

from ..errors import Errors, SparseExpertError

STUDENT_CONFIG = "student.cfg"


def student_config_text() -> str:
    """The text of the shipped student config (package data). Raises E170 when the
    installation lacks it."""
    resource = resources.files(__package__).joinpath(STUDENT_CONFIG)
    try:
        return resource.read_text(encoding="utf8")
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise SparseExpertError(Errors.E170.format(path=resource, reason=reason)) from None


@functools.lru_cache(maxsize=1)
def _shipped_distill_section() -> Dict[str, Any]:
    # parsed once: it is the package's own file, the same for the whole process
    section = Config().from_str(student_config_text(), interpolate=False)["distill"]
    return {**section, "prune": dict(section["prune"])}


def shipped_distill_settings() -> Dict[str, Any]:
    """A copy of the shipped ``[distill]`` section (``prune`` a nested dict): the defaults."""
    section = _shipped_distill_section()
    return {**section, "prune": dict(section["prune"])}


@dataclass
class PruneSettings:
    """[distill.prune]; the meaning and default of each field are in student.cfg."""

    min_expert_share: float
    n_experts: Optional[int]
    ffn_keep: float
    encoder_keep: float
    finetune_epochs: int


@dataclass
class DistillSettings:
    """[distill]; the meaning and default of each field are in student.cfg. No field
    has a default here: what a config leaves out comes from the shipped section."""

    alpha: float
    temperature: float
    router_weight: float
    student_kb: bool
    student_rules: bool
    init_from_teacher: bool
    expert_policy: str
    augment_crops: int
    epochs: int
    batch_size: int
    learn_rate: float
    weight_decay: float
    grad_clip: float
    max_seconds: Optional[float]
    start_margin: float
    seed: int
    prune: PruneSettings

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "DistillSettings":
        """Read and check the ``[distill]`` section; a key it leaves out takes the
        value of the shipped student.cfg."""
        section = dict(config.get("distill", {}) or {})
        prune = dict(section.pop("prune", {}) or {})
        defaults = shipped_distill_settings()
        default_prune = defaults.pop("prune")
        settings = cls(**{**defaults, **_known(cls, section, "distill")},
                       prune=PruneSettings(**{**default_prune, **_known(PruneSettings, prune, "distill.prune")}))
        settings.check()
        return settings

    def check(self) -> None:
        """Raise E072 for a value of the wrong type or out of range."""
        for owner, prefix in ((self, ""), (self.prune, "prune.")):
            for f in fields(owner):
                value = getattr(owner, f.name)
                if f.name != "prune" and not _is_type(value, str(f.type)):
                    raise ValueError(Errors.E072.format(key=prefix + f.name, value=value,
                                                        reason=f"it must be {_TYPE_NAMES[str(f.type)]}"))
        p = self.prune
        for key, value, ok, reason in [
            ("alpha", self.alpha, 0.0 <= self.alpha <= 1.0, "use a number in [0, 1]"),
            ("temperature", self.temperature, self.temperature > 0, "use a positive number"),
            ("router_weight", self.router_weight, self.router_weight >= 0, "use 0 (off) or more"),
            ("expert_policy", self.expert_policy, self.expert_policy in ("drop", "merge"), "use 'drop' or 'merge'"),
            ("augment_crops", self.augment_crops, self.augment_crops >= 0, "use 0 (off) or more"),
            ("epochs", self.epochs, self.epochs >= 1, "use 1 or more"),
            ("batch_size", self.batch_size, self.batch_size >= 1, "use 1 or more"),
            ("learn_rate", self.learn_rate, self.learn_rate > 0, "use a positive number"),
            ("weight_decay", self.weight_decay, self.weight_decay >= 0, "use 0 or more"),
            ("grad_clip", self.grad_clip, self.grad_clip > 0, "use a positive number"),
            ("max_seconds", self.max_seconds, self.max_seconds is None or self.max_seconds > 0,
             "use a positive number, or null for no limit"),
            ("start_margin", self.start_margin, 0.0 <= self.start_margin <= 1.0, "use a number in [0, 1]"),
            ("prune.min_expert_share", p.min_expert_share, 0.0 <= p.min_expert_share < 1.0, "use a number in [0, 1)"),
            ("prune.n_experts", p.n_experts, p.n_experts is None or p.n_experts >= 1, "use 1 or more, or null"),
            ("prune.ffn_keep", p.ffn_keep, 0.0 < p.ffn_keep <= 1.0, "use a fraction in (0, 1]"),
            ("prune.encoder_keep", p.encoder_keep, 0.0 < p.encoder_keep <= 1.0, "use a fraction in (0, 1]"),
            ("prune.finetune_epochs", p.finetune_epochs, p.finetune_epochs >= 0, "use 0 or more"),
        ]:
            if not ok:
                raise ValueError(Errors.E072.format(key=key, value=value, reason=reason))

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


_TYPE_NAMES = {"float": "a number", "int": "a whole number", "bool": "true or false", "str": "a string",
               "Optional[float]": "a number or null", "Optional[int]": "a whole number or null"}


def _is_type(value: Any, annotation: str) -> bool:
    if annotation.startswith("Optional[") and value is None:
        return True
    kind = annotation.removeprefix("Optional[").removesuffix("]")
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):  # a bool is an int to Python, never to a config reader
        return False
    return isinstance(value, {"float": (int, float), "int": int, "str": str}[kind])


def _known(cls: type, section: Dict[str, Any], name: str) -> Dict[str, Any]:
    names = {f.name for f in fields(cls)} - {"prune"}
    unknown = sorted(set(section) - names)
    if unknown:
        raise ValueError(Errors.E072.format(key=unknown[0], value=section[unknown[0]],
                                            reason=f"unknown key in [{name}]; known keys: {', '.join(sorted(names))}"))
    return section


def load_student_config(path: Optional[Union[str, Path]] = None,
                        overrides: Optional[Dict[str, Any]] = None) -> Config:
    """The student config from ``path`` (None = the shipped student.cfg), with dotted
    ``overrides`` ({"distill.alpha": 0.7, ...}), not interpolated."""
    from spacy.util import load_config, load_config_from_str

    if path is None:
        return load_config_from_str(student_config_text(), overrides=overrides or {}, interpolate=False)
    return load_config(Path(path), overrides=overrides or {}, interpolate=False)


__all__ = ["STUDENT_CONFIG", "DistillSettings", "PruneSettings", "load_student_config", "shipped_distill_settings",
           "student_config_text"]
