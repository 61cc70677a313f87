"""The student's config and the distillation settings.

The student is described by a normal spaCy training config (``configs/distill.cfg``
is the shipped one; ``spacy train`` runs it as is, which trains the same student
without a teacher) plus a ``[distill]`` section read here. The KB and rules of the
student always come from the teacher, so its ``[paths] kb`` / ``rules`` stay null.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

from thinc.api import Config

from ..errors import Errors

DEFAULT_STUDENT_CONFIG = """
# The distillation student for a sparse_expert_textcat teacher: one hashed embedding
# table and no window block, 4 experts with top-1 routing, the teacher's token width so
# that its most used experts, its embedding table (folded 8:1 from the teacher of
# configs/bbc_news_teacher.cfg) and its n-gram path can seed the student. No knowledge
# inputs (use_knowledge = false): linking and rule matching cost more per word than the
# whole student network; what the teacher learned from its KB and rules reaches the
# student through its soft labels. Set use_knowledge = true to keep the teacher's rules
# (and, with [distill] student_kb = true, its KB) in the student.
#   sparse-expert distill TEACHER_DIR --output STUDENT_DIR --config configs/distill.cfg \\
#       --train train.spacy --dev dev.spacy [--unlabelled texts.jsonl]
# `python -m spacy train configs/distill.cfg ...` trains the same student without a teacher.

[paths]
train = null
dev = null
kb = null
rules = null
vectors = null
init_tok2vec = null

[system]
gpu_allocator = "pytorch"
seed = 0

[nlp]
lang = "en"
pipeline = ["textcat"]
batch_size = 64
tokenizer = {"@tokenizers":"spacy.Tokenizer.v1"}

[components]

[components.textcat]
factory = "sparse_expert_textcat"
threshold = 0.0
use_knowledge = false
store_routing = false
load_balancing_weight = 0.01
z_loss_weight = 0.001
scorer = {"@scorers":"spacy-sparse-expert.textcat_scorer.v1"}

[components.textcat.model]
@architectures = "spacy-sparse-expert.MoETextCat.v1"
exclusive_classes = true
n_experts = 4
k = 1
d_ff = 64
capacity_factor = null
n_moe_layers = 1
d_knowledge = 16
pooling = "attention"
bow_rows = 262144
ngram_size = 2
bow_scale = 10.0
path_dropout = 0.5
knowledge_bow = true
dropout = 0.1
nO = null

[components.textcat.model.encoder]
@architectures = "spacy-sparse-expert.HashEncoder.v1"
width = 128
attrs = ["NORM","PREFIX","SUFFIX","SHAPE"]
rows = [2500,1250,1250,1250]
n_hashes = 2
window_size = 1
depth = 0
d_hidden = 64
dropout = 0.1

[corpora]

[corpora.train]
@readers = "spacy.Corpus.v1"
path = ${paths.train}
max_length = 0

[corpora.dev]
@readers = "spacy.Corpus.v1"
path = ${paths.dev}
max_length = 0

[training]
dev_corpus = "corpora.dev"
train_corpus = "corpora.train"
seed = ${system.seed}
gpu_allocator = ${system.gpu_allocator}
dropout = 0.1
accumulate_gradient = 1
patience = 800
max_epochs = 0
max_steps = 1200
eval_frequency = 100
frozen_components = []
annotating_components = []
before_to_disk = null
before_update = null

[training.batcher]
@batchers = "spacy.batch_by_words.v1"
discard_oversize = false
tolerance = 0.2
get_length = null

[training.batcher.size]
@schedules = "compounding.v1"
start = 1000
stop = 8000
compound = 1.001
t = 0.0

[training.logger]
@loggers = "spacy.ConsoleLogger.v1"
progress_bar = false

[training.optimizer]
@optimizers = "Adam.v1"
beta1 = 0.9
beta2 = 0.999
L2_is_weight_decay = true
L2 = 0.01
grad_clip = 1.0
use_averages = false
eps = 0.00000001
learn_rate = 0.002

[training.score_weights]
cats_score = 1.0
cats_macro_f = null
cats_macro_auc = null

[pretraining]

[initialize]
vectors = ${paths.vectors}
init_tok2vec = ${paths.init_tok2vec}
vocab_data = null
lookups = null
before_init = null
after_init = null

[initialize.components]

[initialize.components.textcat]

[initialize.components.textcat.kb_loader]
@misc = "spacy-sparse-expert.KBLoader.v1"
path = ${paths.kb}

[initialize.components.textcat.rules_loader]
@misc = "spacy-sparse-expert.RulesLoader.v1"
path = ${paths.rules}

[initialize.tokenizer]

# --- distillation (read by `sparse-expert distill`, ignored by `spacy train`) ---------
[distill]
# loss = (1 - alpha) * CE(gold) + alpha * T^2 * KL(teacher_T || student_T)
alpha = 0.5
temperature = 2.0
# weight of KL(teacher routing || student routing) per token; needs experts from the teacher
router_weight = 0.0
# with use_knowledge = true: which of the teacher's knowledge the student keeps (on
# BBC, linking costs ~4 microseconds a word and the rules ~3, the student network ~3)
student_kb = false
student_rules = true
# seed the student with the teacher's weights where shapes allow (distill/transfer.py)
init_from_teacher = true
# the teacher's less used experts: "drop" them, or "merge" them into the kept ones
expert_policy = "drop"
# random crops (25-75% of the tokens) per training document, labelled by the teacher
# only: a larger transfer set than the gold data
augment_crops = 2
epochs = 4
batch_size = 16
learn_rate = 0.002
weight_decay = 0.01
grad_clip = 1.0
# stop the main training after this many seconds (null = no limit)
max_seconds = null
seed = 0

[distill.prune]
# after training: drop experts whose routing share is below this (0 = keep all) ...
min_expert_share = 0.02
# ... and keep at most this many (null = no cap)
n_experts = null
# fraction of each expert's hidden units kept (measured importance)
ffn_keep = 0.5
# fraction of the encoder blocks' hidden units kept (structured L2 magnitude)
encoder_keep = 0.5
# epochs of distillation after pruning
finetune_epochs = 1
"""


@dataclass
class PruneSettings:
    """[distill.prune]: see DEFAULT_STUDENT_CONFIG for the meaning of each field."""

    min_expert_share: float = 0.0
    n_experts: Optional[int] = None
    ffn_keep: float = 1.0
    encoder_keep: float = 1.0
    finetune_epochs: int = 0


@dataclass
class DistillSettings:
    """[distill]: see DEFAULT_STUDENT_CONFIG for the meaning of each field."""

    alpha: float = 0.5
    temperature: float = 2.0
    router_weight: float = 0.0
    student_kb: bool = True
    student_rules: bool = True
    init_from_teacher: bool = True
    expert_policy: str = "drop"
    augment_crops: int = 0
    epochs: int = 8
    batch_size: int = 16
    learn_rate: float = 0.002
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    max_seconds: Optional[float] = None
    seed: int = 0
    prune: PruneSettings = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.prune is None:
            self.prune = PruneSettings()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "DistillSettings":
        """Read and check the ``[distill]`` section (defaults where it is missing)."""
        section = dict(config.get("distill", {}) or {})
        prune = dict(section.pop("prune", {}) or {})
        settings = cls(**_known(cls, section, "distill"), prune=PruneSettings(**_known(PruneSettings, prune,
                                                                                       "distill.prune")))
        settings.check()
        return settings

    def check(self) -> None:
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


def _known(cls: type, section: Dict[str, Any], name: str) -> Dict[str, Any]:
    names = {f.name for f in fields(cls)} - {"prune"}
    unknown = sorted(set(section) - names)
    if unknown:
        raise ValueError(Errors.E072.format(key=unknown[0], value=section[unknown[0]],
                                            reason=f"unknown key in [{name}]; known keys: {', '.join(sorted(names))}"))
    return section


def load_student_config(path: Optional[Union[str, Path]] = None,
                        overrides: Optional[Dict[str, Any]] = None) -> Config:
    """The student config from ``path`` (None = the built-in DEFAULT_STUDENT_CONFIG),
    with dotted ``overrides`` ({"distill.alpha": 0.7, ...}), not interpolated."""
    from spacy.util import load_config, load_config_from_str

    if path is None:
        return load_config_from_str(DEFAULT_STUDENT_CONFIG, overrides=overrides or {}, interpolate=False)
    return load_config(Path(path), overrides=overrides or {}, interpolate=False)


__all__ = ["DEFAULT_STUDENT_CONFIG", "DistillSettings", "PruneSettings", "load_student_config"]
