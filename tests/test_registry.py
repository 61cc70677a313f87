"""Every entry point named in pyproject.toml resolves, and spaCy's registries find them."""
from __future__ import annotations

from importlib.metadata import entry_points

import pytest
from spacy.language import Language
from spacy.util import registry

GROUPS = ("spacy_factories", "spacy_architectures", "spacy_misc", "spacy_scorers")
OURS = [ep for group in GROUPS for ep in entry_points(group=group) if ep.value.startswith("spacy_sparse_expert")]


def test_entry_points_are_installed():
    names = {ep.name for ep in OURS}
    assert {"sparse_expert_textcat", "sparse_expert_textcat_multilabel", "spacy-sparse-expert.MoETextCat.v1",
            "spacy-sparse-expert.KBLoader.v1", "spacy-sparse-expert.RulesLoader.v1"} <= names


@pytest.mark.parametrize("ep", OURS, ids=[ep.name for ep in OURS])
def test_entry_point_loads(ep):
    assert callable(ep.load())


@pytest.mark.parametrize(
    "registry_name,name",
    [
        ("architectures", "spacy-sparse-expert.MoETextCat.v1"),
        ("architectures", "spacy-sparse-expert.HashEncoder.v1"),
        ("architectures", "spacy-sparse-expert.TransformerEncoder.v1"),
        ("misc", "spacy-sparse-expert.KBLoader.v1"),
        ("misc", "spacy-sparse-expert.RulesLoader.v1"),
        ("scorers", "spacy-sparse-expert.textcat_scorer.v1"),
        ("scorers", "spacy-sparse-expert.textcat_multilabel_scorer.v1"),
    ],
)
def test_registered(registry_name, name):
    assert callable(registry.get(registry_name, name))
    # entry points mirror the decorators, so configs resolve without importing the package
    assert name in {ep.name for ep in OURS}


@pytest.mark.parametrize("factory", ["sparse_expert_textcat", "sparse_expert_textcat_multilabel"])
def test_factories(factory):
    assert Language.has_factory(factory)


def test_no_name_under_spacy_namespace():
    for registry_name in ("architectures", "misc", "scorers"):
        for name in getattr(registry, registry_name).get_all():
            if "sparse" in name.lower():
                assert name.startswith("spacy-sparse-expert."), name
