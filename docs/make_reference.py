"""Write the reference parts of docs/ from the code, so that no default or setting drifts.

A page is hand-written prose with generated blocks in it:

    <!-- reference: KIND NAME -->
    (generated: replaced on every run)
    <!-- /reference -->

KIND NAME is one of
    factory sparse_expert_textcat           the factory's settings ([components.NAME])
    initialize sparse_expert_textcat        its [initialize.components.NAME] settings
    architecture spacy-sparse-expert.X.v1   a registered model builder's settings
    misc spacy-sparse-expert.X.v1           a registered loader's settings
    scorer spacy-sparse-expert.X.v1         a registered scorer
    distill-config -                        the [distill] settings of the student config
    cli kb                                  every command of `sparse-expert kb` ("cli distill":
                                            the top-level command itself; "cli -": the root options)

Defaults come from the signatures and from spaCy's factory meta (the default config
spaCy fills in), types from the annotations or, where the builders annotate ``Any`` so
that their own range checks run first (ml/settings.py), from the docstrings, and the
descriptions from the docstrings' spaCy-style ``name (Type): what it does`` entries and
from the Typer commands' help. Every entry point the package registers and every
`sparse-expert` command must have a block somewhere in docs/.

    python docs/make_reference.py           rewrite the blocks in place
    python docs/make_reference.py --check   exit 1, naming every stale or missing block
"""
from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

DOCS = Path(__file__).resolve().parent
DIST = "spacy-sparse-expert"
# entry-point group -> block kind
ENTRY_POINT_KINDS = {"spacy_factories": "factory", "spacy_architectures": "architecture",
                     "spacy_misc": "misc", "spacy_scorers": "scorer"}
BLOCK = re.compile(r"(<!-- reference: (?P<kind>[\w-]+) (?P<name>\S+) -->\n)(?P<body>.*?)(<!-- /reference -->)",
                   re.DOTALL)
NO_DESCRIPTION = "**undocumented**"
# a docstring entry: "name (Type): text", "a, b (Type): text", "a (int), b (int): text"
# or "name (Type)." at the docstring's own indentation; the text runs on over deeper lines
_ENTRY = re.compile(r"^(?P<head>[a-z_]\w*(?:\s*\([^:]*?\))?(?:\s*,\s*[a-z_]\w*(?:\s*\([^:]*?\))?)*)"
                    r"\s*(?::\s*(?P<text>.*)|\.)$", re.IGNORECASE)
_HEAD_NAME = re.compile(r"([a-z_]\w*)\s*(?:\(([^:]*?)\))?\s*(?:,|$)", re.IGNORECASE)


# -- docstrings ------------------------------------------------------------------------

def parse_docstring(func: Callable) -> Tuple[str, Dict[str, Tuple[Optional[str], str]]]:
    """(summary, {setting: (type or None, description)}) from a spaCy-style docstring.
    The summary is the text before the first entry."""
    lines = inspect.cleandoc(func.__doc__ or "").splitlines()
    summary: List[str] = []
    entries: Dict[str, Tuple[Optional[str], str]] = {}
    current: Optional[List[str]] = None  # the names whose description is being read
    for line in lines:
        match = _ENTRY.match(line) if line and not line[0].isspace() else None
        if match:
            current = []
            text = (match.group("text") or "").strip()
            for name, type_ in _HEAD_NAME.findall(match.group("head")):
                entries[name] = (type_ or None, text)
                current.append(name)
            # a shared type written once, after the last name: "a, b (float): ..."
            last_type = entries[current[-1]][0]
            for name in current:
                if entries[name][0] is None:
                    entries[name] = (last_type, text)
        elif current and line.strip() and not line.startswith("RETURNS"):
            # wrapped text, indented or not, runs on until a blank line or RETURNS
            for name in current:
                type_, text = entries[name]
                entries[name] = (type_, f"{text} {line.strip()}".strip())
        else:
            current = None
            if not entries:
                summary.append(line)
    # "RETURNS" describes the function's result, not the setting it follows
    entries = {name: (type_, text.split(" RETURNS ")[0]) for name, (type_, text) in entries.items()}
    return " ".join(" ".join(summary).split()), entries


# -- values ----------------------------------------------------------------------------

def config_value(value: Any) -> str:
    """A value as a spaCy config writes it."""
    if value is inspect.Parameter.empty:
        return "required"
    if isinstance(value, dict):
        ref = next((f"{k} = {json.dumps(v)}" for k, v in value.items() if k.startswith("@")), None)
        if ref is not None:
            return f"`{ref}`"
    if isinstance(value, tuple):
        value = list(value)
    return f"`{json.dumps(value)}`"


def annotation_name(annotation: Any) -> Optional[str]:
    if annotation is inspect.Parameter.empty or annotation is Any or annotation == "Any":
        return None
    if isinstance(annotation, str):
        return annotation
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return text or str(annotation).replace("typing.", "")


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def table(header: Tuple[str, ...], rows: List[Tuple[str, ...]]) -> str:
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def settings_rows(func: Callable, defaults: Optional[Dict[str, Any]] = None, skip: Tuple[str, ...] = (),
                  fallback_docs: Tuple[Callable, ...] = ()) -> List[Tuple[str, str, str, str]]:
    """(setting, type, default, description) per keyword of `func`; the default from
    `defaults` (spaCy's default config) where given, else the signature."""
    _, docs = parse_docstring(func)
    for other in fallback_docs:  # e.g. the multilabel factory's docstring defers to the other one
        for name, entry in parse_docstring(other)[1].items():
            docs.setdefault(name, entry)
    rows = []
    for name, param in inspect.signature(func).parameters.items():
        if name in skip or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        doc_type, text = docs.get(name, (None, ""))
        type_ = doc_type or annotation_name(param.annotation) or ""
        default = defaults[name] if defaults is not None and name in defaults else param.default
        rows.append((f"`{name}`", f"`{type_}`" if type_ else "", config_value(default), text or NO_DESCRIPTION))
    return rows


# -- block kinds -----------------------------------------------------------------------

def _spacy_registry() -> Any:
    from spacy.util import registry
    for group in ENTRY_POINT_KINDS:  # importing what they name registers it, as spaCy does lazily
        for ep in _entry_points(group):
            ep.load()
    return registry


def render_factory(name: str) -> str:
    from spacy.language import Language
    _spacy_registry()
    meta = Language.get_factory_meta(name)
    factories = _spacy_registry().factories
    func = factories.get(name)
    siblings = tuple(factories.get(ep.name) for ep in _entry_points("spacy_factories") if ep.name != name)
    summary, _ = parse_docstring(func)
    rows = settings_rows(func, meta.default_config, skip=("nlp", "name"), fallback_docs=siblings)
    assigns = ", ".join(f"`{a}`" for a in meta.assigns)
    weights = ", ".join(f"`{k}`" for k, v in meta.default_score_weights.items() if v)
    return (f"{summary}\n\nAssigns: {assigns}. Score weights: {weights}.\n\n"
            + table(("Setting", "Type", "Default", "Description"), rows))


def render_initialize(name: str) -> str:
    from spacy.language import Language
    _spacy_registry()
    # the class the factory builds (both factories build the same one)
    component = inspect.signature(_spacy_registry().factories.get(name)).return_annotation
    rows = settings_rows(component.initialize, skip=("self", "get_examples", "nlp"))
    return (f"Settings of `[initialize.components.NAME]` for a `{name}` component named NAME "
            f"(`{component.__name__}.initialize`).\n\n"
            + table(("Setting", "Type", "Default", "Description"), rows))


def render_registered(table_name: str, name: str) -> str:
    func = getattr(_spacy_registry(), table_name).get(name)
    summary, _ = parse_docstring(func)
    rows = settings_rows(func)
    body = f"{summary}\n\n" if summary else ""
    if not rows:
        return body + "No settings.\n"
    return body + table(("Setting", "Type", "Default", "Description"), rows)


def _cli_root() -> Tuple[Any, Any]:
    from typer.main import get_command

    from spacy_sparse_expert.cli.main import app
    root = get_command(app)
    return root, root.context_class(root, info_name="sparse-expert")


def _param_row(param: Any, ctx: Any) -> Tuple[str, str, str, str]:
    if param.param_type_name == "argument":
        label = f"`{param.name.upper()}`"
    else:  # "--jsonl / --no-jsonl" for a pair, "--output, -o" for aliases
        label = (" / " if param.secondary_opts else ", ").join(f"`{o}`" for o in (*param.opts, *param.secondary_opts))
    # typer >= 0.20 names a type with display_type ("<list[Path]>"); click's own name before
    type_ = (param.display_type(ctx) if hasattr(param, "display_type") else param.type.name).strip("<>")
    if getattr(param, "is_flag", False) and not param.secondary_opts:
        type_ = "flag"
    if param.required:
        default = "required"
    elif param.default is None or (param.multiple and not param.default):
        default = ""
    else:
        default = f"`{json.dumps(param.default) if isinstance(param.default, bool) else param.default}`"
    if (param.multiple or param.nargs == -1) and type_.startswith("list[") and type_.endswith("]"):
        type_ = type_[5:-1]
    if param.multiple:
        type_ += ", repeatable"
    elif param.nargs == -1:
        type_ += ", any number"
    return label, type_, default, getattr(param, "help", None) or NO_DESCRIPTION


def _usage_pieces(command: Any) -> List[str]:
    pieces = ["[OPTIONS]"] if any(p.param_type_name == "option" for p in command.params) else []
    for param in command.params:
        if param.param_type_name == "argument":
            piece = param.name.upper() + ("..." if param.nargs == -1 else "")
            pieces.append(piece if param.required else f"[{piece}]")
    if getattr(command, "commands", None):
        pieces.append("COMMAND [ARGS]...")
    return pieces


def _sub_context(command: Any, name: str, parent: Any) -> Any:
    # the command's own Context class: typer vendors click in some versions, not in others
    return command.context_class(command, info_name=name, parent=parent)


def _command_section(command: Any, ctx: Any, level: str) -> str:
    path = ctx.command_path
    usage = " ".join([path, *_usage_pieces(command)])
    params = [p for p in command.params if not p.hidden and p.name != "help"]
    rows = [_param_row(p, ctx) for p in params]
    help_text = inspect.cleandoc(command.help or "")
    out = f"{level} `{path}`\n\n{help_text}\n\n```\n{usage}\n```\n\n"
    out += table(("Argument / option", "Type", "Default", "Description"), rows) if rows else "No options.\n"
    if getattr(command, "commands", None):
        for sub_name in command.commands:  # in the order the app adds them
            sub = command.commands[sub_name]
            if not sub.hidden:
                out += "\n" + _command_section(sub, _sub_context(sub, sub_name, ctx), level + "#")
    return out


def render_cli(name: str) -> str:
    root, root_ctx = _cli_root()
    if name == "-":  # the options of `sparse-expert` itself
        rows = [_param_row(p, root_ctx) for p in root.params if p.name != "help"]
        return f"{inspect.cleandoc(root.help or '')}\n\n" + table(("Option", "Type", "Default", "Description"), rows)
    if name not in root.commands:
        raise KeyError(f"no command `sparse-expert {name}` (commands: {', '.join(sorted(root.commands))})")
    command = root.commands[name]
    ctx = _sub_context(command, name, root_ctx)
    if getattr(command, "commands", None):  # a group: one section per command, in the order added
        subs = [(sub, command.commands[sub]) for sub in command.commands if not command.commands[sub].hidden]
        return "\n".join(_command_section(sub, _sub_context(sub, sub_name, ctx), "##") for sub_name, sub in subs)
    return _command_section(command, ctx, "##")


def _commented_keys(config_text: str) -> Dict[Tuple[str, str], str]:
    """{(section, key): the comment lines right above the key} of a config file."""
    out: Dict[Tuple[str, str], str] = {}
    section, comment = "", []
    for raw in config_text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section, comment = line[1:-1], []
        elif line.startswith("#"):
            comment.append(line.lstrip("#").strip())
        elif "=" in line:
            out[(section, line.split("=", 1)[0].strip())] = " ".join(comment)
            comment = []
        else:
            comment = []
    return out


def render_distill_config(name: str) -> str:
    """The [distill] and [distill.prune] settings: types from their dataclasses,
    defaults from the shipped student config (their one source), descriptions from the
    comment above each key there."""
    from dataclasses import fields

    from spacy_sparse_expert.distill.config import (DistillSettings, PruneSettings, shipped_distill_settings,
                                                    student_config_text)
    comments = _commented_keys(student_config_text())
    shipped = shipped_distill_settings()
    out = []
    for section, cls, defaults in (("distill", DistillSettings, shipped), ("distill.prune", PruneSettings,
                                                                          shipped["prune"])):
        rows = [(f"`{f.name}`", f"`{annotation_name(f.type)}`", config_value(defaults[f.name]),
                 comments.get((section, f.name)) or NO_DESCRIPTION)
                for f in fields(cls) if f.name in defaults and not isinstance(defaults[f.name], dict)]
        out.append(f"`[{section}]`\n\n" + table(("Setting", "Type", "Default", "Description"), rows))
    return "\n".join(out)


RENDERERS: Dict[str, Callable[[str], str]] = {
    "distill-config": render_distill_config,
    "factory": render_factory,
    "initialize": render_initialize,
    "architecture": lambda name: render_registered("architectures", name),
    "misc": lambda name: render_registered("misc", name),
    "scorer": lambda name: render_registered("scorers", name),
    "cli": render_cli,
}


# -- pages -----------------------------------------------------------------------------

def _entry_points(group: str) -> List[metadata.EntryPoint]:
    return sorted((ep for ep in metadata.distribution(DIST).entry_points if ep.group == group),
                  key=lambda ep: ep.name)


def pages(docs: Path = DOCS) -> Iterator[Path]:
    yield from sorted(docs.rglob("*.md"))


def render_page(text: str, where: str = "") -> str:
    """The page with every block regenerated."""
    def replace(match: re.Match) -> str:
        kind, name = match.group("kind"), match.group("name")
        if kind not in RENDERERS:
            raise ValueError(f"{where}: unknown block kind {kind!r} (kinds: {', '.join(RENDERERS)})")
        return match.group(1) + RENDERERS[kind](name).rstrip("\n") + "\n" + match.group(5)
    return BLOCK.sub(replace, text)


def expected_blocks() -> List[Tuple[str, str]]:
    """(kind, name) of the blocks that must exist: every registered entry point and
    every top-level `sparse-expert` command, and the root options."""
    wanted = [(kind, ep.name) for group, kind in ENTRY_POINT_KINDS.items() for ep in _entry_points(group)]
    wanted += [("initialize", ep.name) for ep in _entry_points("spacy_factories")]
    root, _ = _cli_root()
    wanted += [("cli", name) for name in sorted(root.commands)] + [("cli", "-")]
    return wanted


def problems(docs: Path = DOCS, write: bool = False) -> List[str]:
    """What is stale, missing or undocumented; with write, stale pages are rewritten."""
    found: List[Tuple[str, str]] = []
    out: List[str] = []
    for page in pages(docs):
        text = page.read_text(encoding="utf-8")
        found += [(m.group("kind"), m.group("name")) for m in BLOCK.finditer(text)]
        new = render_page(text, str(page))
        if new != text:
            if write:
                page.write_text(new, encoding="utf-8")
            else:
                out.append(f"{page.relative_to(docs.parent)}: stale; run python docs/make_reference.py")
        if NO_DESCRIPTION in new:
            rows = [line.split("|")[1].strip() for line in new.splitlines() if NO_DESCRIPTION in line]
            out.append(f"{page.relative_to(docs.parent)}: no description in the code for {', '.join(rows)}; "
                       "add a `name (Type): ...` line to its docstring or a help= to the option")
    for kind, name in expected_blocks():
        if (kind, name) not in found:
            out.append(f"no block `<!-- reference: {kind} {name} -->` in any page of docs/")
    return out


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a page is stale")
    args = parser.parse_args(argv)
    found = problems(write=not args.check)
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
