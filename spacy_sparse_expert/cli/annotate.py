"""`sparse-expert annotate`: a thin wrapper over :func:`spacy_sparse_expert.annotate.annotate`."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import SparseExpertError
from ._text import echo

app = typer.Typer(help="Annotate a corpus with a trained pipeline, in shards, locally or on Ray.")

_SHOWN_ERRORS = 10


@app.command("annotate", short_help="Annotate a JSONL or Parquet corpus into sharded Parquet or JSONL.")
def annotate_command(
    model: Annotated[Path, typer.Argument(help="Trained pipeline folder (e.g. training/model-best).")],
    input: Annotated[Path, typer.Argument(help="Documents: a .jsonl or .parquet file.")],
    output: Annotated[Path, typer.Argument(help="Output folder (shards part-NNNNN.parquet/.jsonl).")],
    engine: Annotated[str, typer.Option("--engine", help="local (nlp.pipe in this process) or ray.")] = "ray",
    text_field: Annotated[str, typer.Option("--text-field", help="Field or column holding the text.")] = "text",
    id_field: Annotated[str, typer.Option("--id-field", help="Field or column holding the document id.")] = "id",
    input_format: Annotated[
        Optional[str], typer.Option("--input-format", help="jsonl or parquet (default: from the suffix).")
    ] = None,
    output_format: Annotated[str, typer.Option("--output-format", help="parquet or jsonl.")] = "parquet",
    shard_size: Annotated[int, typer.Option("--shard-size", help="Input rows per output shard.")] = 1000,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Documents per nlp.pipe batch.")] = 64,
    num_actors: Annotated[int, typer.Option("--num-actors", help="Ray actors (each loads the pipeline once).")] = 1,
    num_gpus: Annotated[float, typer.Option("--num-gpus", help="GPUs per Ray actor (0: CPU).")] = 0.0,
    address: Annotated[
        Optional[str], typer.Option("--address", help="Join this Ray cluster instead of starting a local Ray.")
    ] = None,
    num_cpus: Annotated[
        Optional[int], typer.Option("--num-cpus", help="CPUs of the local Ray (default: --num-actors).")
    ] = None,
    object_store_mb: Annotated[int, typer.Option("--object-store-mb", help="Object store of the local Ray.")] = 512,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Annotate the documents of INPUT with the pipeline MODEL and write one row per
    document (id, cats, linked entities, rule hits, error) to the folder OUTPUT, one
    shard file per --shard-size input rows, each written atomically. Re-running the same
    command after a crash or a kill skips the finished shards. A document that fails is
    written with its error and does not stop the run. With --engine ray (the default),
    Ray Data runs --num-actors actors on a local Ray started for this run (or the
    cluster at --address); --engine local needs no Ray."""
    from ..annotate import annotate

    try:
        summary = annotate(model, input, output, engine=engine, text_field=text_field, id_field=id_field,
                           input_format_name=input_format, output_format=output_format, shard_size=shard_size,
                           batch_size=batch_size, num_actors=num_actors, num_gpus=num_gpus, address=address,
                           num_cpus=num_cpus, object_store_mb=object_store_mb, progress=not quiet)
    except SparseExpertError as err:
        echo(err, err=True)
        raise typer.Exit(1) from None
    echo(f"{summary.n_docs:,} documents in {summary.n_shards - summary.n_skipped} shards "
         f"({summary.docs_per_second:,.1f} docs/s); {summary.n_skipped} shards already done; output: {output}")
    if summary.errors:
        echo(f"{len(summary.errors):,} documents failed (see the 'error' column):", err=True)
        for _row, doc_id, message in summary.errors[:_SHOWN_ERRORS]:
            echo(f"  id {doc_id!r}: {message}", err=True)
        if len(summary.errors) > _SHOWN_ERRORS:
            echo(f"  ... and {len(summary.errors) - _SHOWN_ERRORS:,} more", err=True)


__all__ = ["app"]
