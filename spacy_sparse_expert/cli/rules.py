"""`sparse-expert rules ...`: check rule files."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import SparseExpertError
from ._text import literal, safe_json
from ..rules.rules import RULE_KINDS, RuleProblem, parse_rules, read_rule_lines
from ..rules.rule_validation import unbounded_pattern_warnings

app = typer.Typer(help="Check rule files (JSONL hints for the classifier).", no_args_is_help=True)


@app.callback()
def _rules() -> None:
    """Check rule files (JSONL hints for the classifier)."""


@app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="JSONL rule file to check.")],
    kb: Annotated[Optional[Path], typer.Option(
        "--kb", help="Compiled KB directory: kb_type / kb_relation IRIs must be in it.")] = None,
    labels: Annotated[Optional[List[str]], typer.Option(
        "--labels", help="The component's labels, comma-separated or the option repeated; a rule "
        "label outside them is reported with the closest label.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check every line of a rule file and list each problem (line, field, message).

    Exits 1 if any line is invalid, 0 with a count of the rules by kind if all are valid.
    """
    console = Console(soft_wrap=False, highlight=False)
    err_console = Console(stderr=True, highlight=False)
    label_list = _split_labels(labels)
    try:
        knowledge_base = _load_kb(kb) if kb is not None else None
        rules, problems = parse_rules(read_rule_lines(file), source=str(file), kb=knowledge_base,
                                      labels=label_list)
    except SparseExpertError as exc:
        if as_json:
            typer.echo(json.dumps({"path": str(file), "ok": False, "error": str(exc)}))
        else:
            # literal Text: the message quotes paths and file content (markup, terminal codes)
            err_console.print(literal(exc, style="red", multiline=True))
        raise typer.Exit(code=1) from None
    counts = Counter(rule.kind for rule in rules) if not problems else Counter()
    notes = unbounded_pattern_warnings(rules, source=str(file))  # W020: valid, matched greedily
    if as_json:
        typer.echo(safe_json({
            "path": str(file),
            "ok": not problems,
            "rules": sum(counts.values()),
            "kinds": {kind: counts[kind] for kind in RULE_KINDS},
            "problems": [p.to_dict() for p in problems],
            "warnings": notes,
        }))
    elif problems:
        console.print(_problem_table(file, problems))
        n_lines = len({p.line for p in problems})
        console.print(literal(f"{len(problems)} problem(s) on {n_lines} line(s) of {file}."))
    else:
        summary = ", ".join(f"{counts[kind]} {kind}" for kind in RULE_KINDS)
        kb_note = f", checked against the KB {kb}" if kb is not None else ""
        console.print(literal(f"OK: {file} has {sum(counts.values())} valid rules ({summary}){kb_note}."))
    if not as_json:
        for note in notes:
            err_console.print(literal(note, style="yellow", multiline=True))
    if problems:
        raise typer.Exit(code=1)


def _split_labels(values: Optional[List[str]]) -> Optional[List[str]]:
    """`--labels a,b --labels c` -> [a, b, c] (first occurrence order, no repeats)."""
    if not values:
        return None
    found = [x.strip() for value in values for x in value.split(",") if x.strip()]
    if not found:  # an empty --labels would silently turn the label check off
        raise typer.BadParameter("names no label; give e.g. --labels sport,business", param_hint="--labels")
    return list(dict.fromkeys(found))


def _problem_table(file: Path, problems: list[RuleProblem]) -> Table:
    table = Table(title=literal(f"Problems in {file}"), title_justify="left")
    table.add_column("line", justify="right", no_wrap=True)
    table.add_column("field", no_wrap=True)
    table.add_column("message", overflow="fold")
    for p in problems:
        # literal Text: messages quote file content, brackets ("[pattern -> 0]") and all
        table.add_row(literal(p.line), literal(p.field or "-"), literal(p.message))
    return table


def _load_kb(path: Path) -> object:
    from ..kb.knowledge_base import KnowledgeBase

    return KnowledgeBase.from_disk(path)
