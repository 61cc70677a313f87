"""Registry use in one place: spaCy's registries for what spaCy resolves from configs,
and the package's own catalogue registry for pluggable token encoders."""
from __future__ import annotations

import catalogue
from spacy.util import registry

# Token encoders for the MoE classifier (hashed default, transformers). Referenced from
# configs as @architectures entries; this catalogue lets code list what is available.
encoders = catalogue.create("spacy_sparse_expert", "encoders", entry_points=True)

__all__ = ["registry", "encoders"]
