"""`sparse-expert distill`: a thin wrapper over :func:`spacy_sparse_expert.distill.distill`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="Distil a trained pipeline into a smaller, faster student pipeline.")


@app.command(
    "distill",
    short_help="Distil a trained pipeline into a smaller, faster student pipeline.",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def distill_command(
    ctx: typer.Context,
    teacher: Annotated[Path, typer.Argument(help="Trained teacher pipeline (e.g. training/model-best).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the student pipeline.")],
    config: Annotated[
        Optional[Path],
        typer.Option("--config", "-c", help="Student config (default: the built-in configs/distill.cfg)."),
    ] = None,
    train: Annotated[Optional[Path], typer.Option("--train", help=".spacy training docs with gold cats.")] = None,
    dev: Annotated[
        Optional[Path], typer.Option("--dev", help=".spacy docs for model selection and the report.")
    ] = None,
    unlabelled: Annotated[
        Optional[Path], typer.Option("--unlabelled", help='JSONL {"text": ...} lines, taught by the teacher only.')
    ] = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="Also write the report as JSON.")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="torch CPU threads (default: torch's).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """Distil TEACHER into a student pipeline at --output: soft labels of the teacher,
    loss (1 - alpha) * CE(gold) + alpha * T^2 * KL(teacher_T || student_T), expert and
    neuron pruning, fine-tuning. The student loads with spacy.load and works with
    `spacy evaluate` and `spacy package`. Config values can be overridden as in
    `spacy train`: --distill.alpha 0.7 --distill.prune.ffn_keep 0.25"""
    from spacy.cli._util import parse_config_overrides
    from rich.console import Console
    from rich.table import Table

    from ..distill import distill
    from ..distill.evaluate import stats_table
    from ..errors import SparseExpertError

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    try:
        overrides = parse_config_overrides(ctx.args)
    except SystemExit:
        raise typer.Exit(1) from None
    console = Console()
    try:
        result = distill(teacher, output, config=config, train=train, dev=dev, unlabelled=unlabelled,
                         overrides=overrides, progress=not quiet)
    except (ValueError, SparseExpertError, ImportError, OSError) as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from None
    rows = stats_table({"teacher": result.teacher, "student": result.student})
    table = Table(title=f"Distilled {teacher} -> {result.output} in {result.seconds:.0f} s"
                        + ("" if dev else " (no --dev: macro-F1 not measured)"))
    for i, head in enumerate(rows[0]):
        table.add_column(head, justify="left" if i == 0 else "right")
    for row in rows[1:]:
        table.add_row(*row)
    console.print(table)
    if result.pruning is not None:
        p = result.pruning
        console.print(f"pruning: experts kept {p.experts}, expert d_ff {p.d_ff[0]} -> {p.d_ff[1]}, encoder "
                      f"d_hidden {p.d_hidden[0]} -> {p.d_hidden[1]}, parameters {p.params[0]:,} -> {p.params[1]:,}")
    if report is not None:
        report.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf8")
        console.print(f"report -> {report}")


__all__ = ["app", "distill_command"]
