"""`sparse-expert rules ...`: check rule files."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..errors import SparseExpertError
from ..kb.rules import RULE_KINDS, RuleProblem, parse_rules, read_rule_lines

app = typer.Typer(help="Check rule files (JSONL hints for the classifier).", no_args_is_help=True)


@app.callback()
def _rules() -> None:
    """Check rule files (JSONL hints for the classifier)."""


@app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="JSONL rule file to check.")],
    kb: Annotated[Optional[Path], typer.Option(
        "--kb", help="Compiled KB directory: kb_type / kb_relation IRIs must be in it.")] = None,
    labels: Annotated[Optional[str], typer.Option(
        "--labels", help="Comma-separated labels; rules may name only these.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check every line of a rule file and list each problem (line, field, message).

    Exits 1 if any line is invalid, 0 with a count of the rules by kind if all are valid.
    """
    console = Console(soft_wrap=False, highlight=False)
    err_console = Console(stderr=True, highlight=False)
    label_list = [x.strip() for x in labels.split(",") if x.strip()] if labels else None
    try:
        knowledge_base = _load_kb(kb) if kb is not None else None
        rules, problems = parse_rules(read_rule_lines(file), source=str(file), kb=knowledge_base,
                                      labels=label_list)
    except SparseExpertError as exc:
        if as_json:
            typer.echo(json.dumps({"path": str(file), "ok": False, "error": str(exc)}))
        else:
            # Text, not markup: the message quotes paths and file content ("[/x]" would break markup)
            err_console.print(Text(str(exc), style="red"))
        raise typer.Exit(code=1) from None
    counts = Counter(rule.kind for rule in rules) if not problems else Counter()
    if as_json:
        typer.echo(json.dumps({
            "path": str(file),
            "ok": not problems,
            "rules": sum(counts.values()),
            "kinds": {kind: counts[kind] for kind in RULE_KINDS},
            "problems": [p.to_dict() for p in problems],
        }, ensure_ascii=False))
    elif problems:
        console.print(_problem_table(file, problems))
        n_lines = len({p.line for p in problems})
        console.print(f"{len(problems)} problem(s) on {n_lines} line(s) of {file}.", markup=False)
    else:
        summary = ", ".join(f"{counts[kind]} {kind}" for kind in RULE_KINDS)
        kb_note = f", checked against the KB {kb}" if kb is not None else ""
        console.print(f"OK: {file} has {sum(counts.values())} valid rules ({summary}){kb_note}.",
                      markup=False)
    if problems:
        raise typer.Exit(code=1)


def _problem_table(file: Path, problems: list[RuleProblem]) -> Table:
    table = Table(title=Text(f"Problems in {file}"), title_justify="left")
    table.add_column("line", justify="right", no_wrap=True)
    table.add_column("field", no_wrap=True)
    table.add_column("message", overflow="fold")
    for p in problems:
        # Text, not str: messages quote brackets ("[pattern -> 0]") that are not markup
        table.add_row(Text(str(p.line)), Text(p.field or "-"), Text(p.message))
    return table


def _load_kb(path: Path) -> object:
    from ..kb.knowledge_base import KnowledgeBase

    return KnowledgeBase.from_disk(path)
