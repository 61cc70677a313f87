"""The `sparse-expert` command: one Typer app per command group."""
from __future__ import annotations

from importlib import metadata
from typing import Annotated, Optional

import typer

from .annotate import app as annotate_app
from .data import app as data_app
from .distill import app as distill_app
from .init_config import app as init_app
from .kb import app as kb_app
from .rules import app as rules_app

app = typer.Typer(
    name="sparse-expert",
    help="Compile knowledge graphs, check rule files, prepare data, write starting configs and distil "
         "pipelines for spacy-sparse-expert.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(kb_app, name="kb")
app.add_typer(rules_app, name="rules")
app.add_typer(data_app, name="data")
app.add_typer(distill_app)  # one command, at the top level: `sparse-expert distill`
app.add_typer(init_app, name="init")
app.add_typer(annotate_app)  # one command, at the top level: `sparse-expert annotate`


def _print_version(value: bool) -> None:
    if value:
        # the installed distribution's version, as the package's __version__ gives it,
        # without importing the package root (cli/ imports nothing above it)
        try:
            version = metadata.version("spacy-sparse-expert")
        except metadata.PackageNotFoundError:  # pragma: no cover - a bare source tree
            version = "unknown (not installed)"
        typer.echo(f"spacy-sparse-expert {version}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_print_version, is_eager=True, help="Show the version and exit.")] = None,
) -> None:
    """The options of `sparse-expert` itself (the help text is the Typer app's)."""

if __name__ == "__main__":  # pragma: no cover
    app()
