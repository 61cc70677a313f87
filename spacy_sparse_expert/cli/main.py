"""The `sparse-expert` command: one Typer app per command group."""
from __future__ import annotations

import typer

from .data import app as data_app
from .distill import app as distill_app
from .kb import app as kb_app
from .rules import app as rules_app

app = typer.Typer(
    name="sparse-expert",
    help="Compile knowledge graphs, check rule files and prepare data for spacy-sparse-expert.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(kb_app, name="kb")
app.add_typer(rules_app, name="rules")
app.add_typer(data_app, name="data")
app.add_typer(distill_app)  # one command, at the top level: `sparse-expert distill`

if __name__ == "__main__":  # pragma: no cover
    app()
