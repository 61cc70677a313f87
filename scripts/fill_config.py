"""Add to spaCy config files the settings spaCy's auto-fill would add, keeping their
comments (`spacy init fill-config` rewrites the whole file and drops them).

    python scripts/fill_config.py configs/*.cfg [--check]

Each missing setting is written at the end of its section with the value spaCy fills
in (the registered function's or the factory's default). --check lists what is missing
and exits 1 if anything is, changing nothing. tests/test_configs.py checks that every
config in configs/ needs nothing.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

import srsly
from spacy.util import load_config, load_model_from_config

Missing = Tuple[str, str, Any]  # (section, key, value)


def unfilled(path: Path) -> List[Missing]:
    """The settings spaCy's auto-fill adds to the config at ``path``."""
    config = load_config(path, interpolate=False)
    filled = load_model_from_config(config, auto_fill=True, validate=False).config
    missing: List[Missing] = []

    def walk(given: Dict[str, Any], full: Dict[str, Any], section: str) -> None:
        for key, value in full.items():
            if key not in given:
                if isinstance(value, dict) and not any(k.startswith("@") for k in value):
                    raise ValueError(f"{path}: a whole section [{section}.{key}] is missing; add it by hand")
                missing.append((section, key, value))
            elif isinstance(value, dict) and isinstance(given[key], dict):
                walk(given[key], value, f"{section}.{key}" if section else key)

    walk(config, filled, "")
    return missing


def fill_text(text: str, missing: List[Missing]) -> str:
    """``text`` with each missing ``key = value`` after the last setting of its section
    (before the blank lines and comments that lead into the next section)."""
    lines = text.split("\n")
    for section, key, value in missing:
        try:
            end = lines.index(f"[{section}]") + 1
        except ValueError as err:
            raise ValueError(f"section [{section}] has no header line of its own; add {key} by hand") from err
        while end < len(lines) and not lines[end].startswith("["):
            end += 1
        while lines[end - 1].strip() == "" or lines[end - 1].lstrip().startswith("#"):
            end -= 1
        lines.insert(end, f"{key} = {srsly.json_dumps(value)}")
    return "\n".join(lines)


def main(paths: List[str], check: bool) -> int:
    status = 0
    for name in paths:
        path = Path(name)
        missing = unfilled(path)
        if check:
            for section, key, value in missing:
                print(f"{path}: [{section}] {key} = {srsly.json_dumps(value)} is missing")
            status |= bool(missing)
            continue
        if missing:
            path.write_text(fill_text(path.read_text(encoding="utf8"), missing), encoding="utf8")
        print(f"{path}: {len(missing)} setting(s) added")
    return status


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main([a for a in args if a != "--check"], "--check" in args))
