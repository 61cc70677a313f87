"""`sparse-expert distill`: a thin wrapper over :func:`spacy_sparse_expert.distill.distill`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ..errors import Errors, SparseExpertError
from ..jsonl import check_input_file
from ._text import echo, literal

if TYPE_CHECKING:
    from rich.console import Console

    from ..distill.trainer import DistillResult

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

    from ..distill import distill

    try:
        _check_arguments(teacher, config=config, train=train, dev=dev, unlabelled=unlabelled, report=report,
                         threads=threads)
    except SparseExpertError as err:
        echo(err, err=True)
        raise typer.Exit(1) from None
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    try:
        overrides = parse_config_overrides(ctx.args)
    except SystemExit:
        raise typer.Exit(1) from None
    # Paths and labels are the user's and the data's: literal Text, no markup or emoji
    console = Console(markup=False, emoji=False, highlight=False)
    try:
        result = distill(teacher, output, config=config, train=train, dev=dev, unlabelled=unlabelled,
                         overrides=overrides, progress=not quiet)
    except (ValueError, SparseExpertError, ImportError, OSError) as err:
        echo(err, err=True)
        raise typer.Exit(1) from None
    print_summary(console, result, teacher=teacher, measured_f1=dev is not None)
    if report is not None:
        try:
            report.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf8")
        except OSError as err:  # the student is saved; only the report is lost
            echo(Errors.E145.format(path=report, reason=err.strerror or err), err=True)
            raise typer.Exit(1) from None
        console.print(literal(f"report -> {report}"))


def print_summary(console: Console, result: DistillResult, *, teacher: Path, measured_f1: bool) -> None:
    """The teacher / student table and the pruning line. Paths are the user's: literal Text."""
    from rich.table import Table

    from ..distill.evaluate import stats_table

    rows = stats_table({"teacher": result.teacher, "student": result.student})
    table = Table(title=literal(f"Distilled {teacher} -> {result.output} in {result.seconds:.0f} s"
                                + ("" if measured_f1 else " (no --dev: macro-F1 not measured)")))
    for i, head in enumerate(rows[0]):
        table.add_column(literal(head), justify="left" if i == 0 else "right")
    for row in rows[1:]:
        table.add_row(*(literal(cell) for cell in row))
    console.print(table)
    if result.pruning is not None:
        p = result.pruning
        console.print(literal(f"pruning: experts kept {p.experts}, expert d_ff {p.d_ff[0]} -> {p.d_ff[1]}, encoder "
                              f"d_hidden {p.d_hidden[0]} -> {p.d_hidden[1]}, parameters {p.params[0]:,} -> "
                              f"{p.params[1]:,}"))


def _check_arguments(teacher: Path, *, config: Optional[Path], train: Optional[Path], dev: Optional[Path],
                     unlabelled: Optional[Path], report: Optional[Path], threads: Optional[int]) -> None:
    """What can be checked in a moment, before the teacher is loaded: paths are of the
    right kind, --unlabelled reads, --train/--dev look like DocBins, --report can be
    written, --threads is positive. Raises SparseExpertError."""
    from ..distill.data import check_docbin_file, read_unlabelled

    if threads is not None and threads < 1:
        raise SparseExpertError(Errors.E144.format(option="--threads", value=threads,
                                                   reason="torch needs at least 1 thread"))
    if not teacher.is_dir():
        reason = "no such directory" if not teacher.exists() else "it is not a directory (pass the pipeline folder)"
        raise SparseExpertError(Errors.E050.format(path=teacher, reason=reason))
    if config is not None:
        check_input_file(config, Errors.E144.format(option="--config", value=str(config),
                                                    reason="no such file"), suffix=".cfg")
    for path in (train, dev):
        if path is not None:
            check_docbin_file(path)
    if unlabelled is not None:
        read_unlabelled(unlabelled)  # read again by the trainer; a bad line fails now, not after loading
    if report is not None:
        if report.is_dir():
            raise SparseExpertError(Errors.E144.format(option="--report", value=str(report),
                                                       reason="it is a directory; pass a file path such as "
                                                              f"{report / 'report.json'}"))
        if not report.parent.is_dir():
            raise SparseExpertError(Errors.E144.format(option="--report", value=str(report),
                                                       reason=f"its folder {report.parent} does not exist"))


__all__ = ["app", "distill_command", "print_summary"]
