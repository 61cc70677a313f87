"""Every distillation default is stated once: the shipped student.cfg (package data,
linked from configs/distill.cfg) holds every [distill] value, DistillSettings holds
none, and the encoder hashing the transfer compares is read from the built model."""
from __future__ import annotations

import inspect
import itertools
import tomllib
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Dict

import pytest
from thinc.api import Config

from spacy_sparse_expert.distill.config import (DistillSettings, PruneSettings, load_student_config,
                                                shipped_distill_settings, student_config_text)
from spacy_sparse_expert.distill.transfer import EncoderHashing
from spacy_sparse_expert.ml.architectures import build_hash_encoder_v1

REPO = Path(__file__).resolve().parent.parent.parent
SHIPPED = Config().from_str(student_config_text(), interpolate=False)["distill"]
TOP_KEYS = [f.name for f in fields(DistillSettings) if f.name != "prune"]
PRUNE_KEYS = [f.name for f in fields(PruneSettings)]


def test_the_dataclasses_state_no_default() -> None:
    for cls in (DistillSettings, PruneSettings):
        for f in fields(cls):
            assert f.default is MISSING and f.default_factory is MISSING, f"{cls.__name__}.{f.name} has a default"


def test_shipped_section_has_exactly_the_settings_fields() -> None:
    assert sorted(k for k in SHIPPED if k != "prune") == sorted(TOP_KEYS)
    assert sorted(SHIPPED["prune"]) == sorted(PRUNE_KEYS)


def test_student_config_is_package_data() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf8"))
    assert "student.cfg" in pyproject["tool"]["setuptools"]["package-data"]["spacy_sparse_expert.distill"]
    assert (REPO / "configs" / "distill.cfg").is_symlink()


@pytest.mark.parametrize("config", [{}, {"distill": {}}, {"distill": {"prune": {}}}])
def test_missing_section_takes_the_shipped_values(config: Dict[str, Any]) -> None:
    settings = DistillSettings.from_config(config).to_dict()
    assert settings == shipped_distill_settings()


@pytest.mark.parametrize("key", TOP_KEYS + [f"prune.{k}" for k in PRUNE_KEYS])
def test_each_left_out_key_comes_from_the_shipped_file(key: str) -> None:
    # a config that states every other key with a non-default value
    cfg = load_student_config(None)
    section = cfg["distill"]
    changed = {"alpha": 0.25, "temperature": 3.0, "router_weight": 0.0, "student_kb": True, "student_rules": False,
               "init_from_teacher": False, "expert_policy": "merge", "augment_crops": 5, "epochs": 9,
               "batch_size": 7, "learn_rate": 0.01, "weight_decay": 0.0, "grad_clip": 2.0, "max_seconds": 30.0,
               "start_margin": 0.02, "seed": 3}
    prune_changed = {"min_expert_share": 0.1, "n_experts": 2, "ffn_keep": 0.75, "encoder_keep": 0.25,
                     "finetune_epochs": 3}
    section.update(changed)
    section["prune"].update(prune_changed)
    owner, name = (section["prune"], key.split(".", 1)[1]) if key.startswith("prune.") else (section, key)
    del owner[name]
    got = DistillSettings.from_config(cfg).to_dict()
    want_top = {k: (SHIPPED[k] if k == key else v) for k, v in changed.items()}
    want_prune = {k: (SHIPPED["prune"][k] if f"prune.{k}" == key else v) for k, v in prune_changed.items()}
    assert got == {**want_top, "prune": want_prune}


BAD_VALUES = ["1", [1], {"a": 1}, True]


@pytest.mark.parametrize("key,value", [
    (key, value) for key, value in itertools.product(TOP_KEYS + [f"prune.{k}" for k in PRUNE_KEYS], BAD_VALUES)
    # a bool is the right type for the boolean settings
    if not (value is True and isinstance(SHIPPED.get(key), bool))
])
def test_a_value_of_the_wrong_type_is_a_coded_error(key: str, value: Any) -> None:
    cfg = load_student_config(None)
    section = cfg["distill"]["prune"] if key.startswith("prune.") else cfg["distill"]
    section[key.split(".", 1)[-1]] = value
    with pytest.raises(ValueError, match=rf"SSE-E072.*\[distill\] {key}="):
        DistillSettings.from_config(cfg)


def test_encoder_hashing_is_read_from_the_built_encoder_not_restated() -> None:
    # the builder's own signature is the one statement of its defaults
    defaults = {name: p.default for name, p in inspect.signature(build_hash_encoder_v1).parameters.items()}
    spec = build_hash_encoder_v1()
    hashing = EncoderHashing.of(spec.featurize)
    assert hashing is not None
    assert hashing.attrs == list(defaults["attrs"]) and hashing.rows == list(defaults["rows"])
    assert hashing.n_hashes == defaults["n_hashes"]
    changed = EncoderHashing.of(build_hash_encoder_v1(rows=[10, 20, 30, 40], n_hashes=1).featurize)
    assert changed is not None and changed.rows == [10, 20, 30, 40] and changed.n_hashes == 1
    assert EncoderHashing.of(object()) is None


def test_a_missing_package_file_is_a_coded_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from spacy_sparse_expert.distill import config as config_module
    from spacy_sparse_expert.errors import SparseExpertError

    class Broken:  # an installation without the data file: its folder holds nothing
        def joinpath(self, name: str) -> Path:
            return tmp_path / name

    monkeypatch.setattr(config_module.resources, "files", lambda package: Broken())
    with pytest.raises(SparseExpertError, match=r"SSE-E170.*student\.cfg.*--config"):
        load_student_config(None)
