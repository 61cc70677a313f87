"""Text from files on the terminal, shown and never obeyed.

RDF labels, IRIs, rule files, data lines and file names reach the CLI's tables and
messages. A control character in them would be obeyed by the terminal (ESC and the C1
CSI byte start sequences that clear the screen or set the window title), a bidi override
would reorder what is shown, and Rich would read "[bold]" as markup and ":smile:" as an
emoji. Everything the CLI prints from outside goes through here: control characters come
out as Python-style escapes (``\\x1b``, ``\\u202e``), and rich `Text` is built from the
escaped string so that no markup or emoji code is interpreted.
"""
from __future__ import annotations

import json
import re
from typing import Any

import typer
from rich.text import Text

# C0 and C1 controls and DEL; bidi embeddings, overrides, isolates and marks; line and
# paragraph separators (they break lines where none is shown); surrogates, which cannot
# be encoded and would crash the write.
_NOT_C0 = "\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE = re.compile(f"[\x00-\x1f{_NOT_C0}]")
_UNSAFE_KEEP_LINES = re.compile(f"[\x00-\x08\x0b-\x1f{_NOT_C0}]")  # keeps "\t" and "\n"
# JSON escapes C0 itself; these it leaves raw when ensure_ascii=False.
_UNSAFE_IN_JSON = re.compile(f"[{_NOT_C0}]")


_SHORT = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _SHORT.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def safe_text(value: Any, *, multiline: bool = False) -> str:
    """``str(value)`` with every control, bidi and separator character escaped.

    multiline (bool): keep "\\n" and "\\t" (for messages that list problems a line each).
    """
    return (_UNSAFE_KEEP_LINES if multiline else _UNSAFE).sub(_escape, str(value))


def literal(value: Any, *, style: str = "", multiline: bool = False) -> Text:
    """A rich Text showing ``value`` as it is: escaped, no markup, no emoji codes."""
    return Text(safe_text(value, multiline=multiline), style=style)


def safe_json(value: Any, **dumps_options: Any) -> str:
    """``json.dumps(value, ensure_ascii=False)`` with DEL, C1, bidi, separator and
    surrogate characters written as \\uXXXX escapes: the same JSON, safe to print."""
    text = json.dumps(value, ensure_ascii=False, **dumps_options)
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def echo(message: Any, *, err: bool = False) -> None:
    """typer.echo of a message that may quote file content or names (kept multi-line)."""
    typer.echo(safe_text(message, multiline=True), err=err)


__all__ = ["echo", "literal", "safe_json", "safe_text"]
