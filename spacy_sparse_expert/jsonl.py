"""One reader of JSON Lines for every JSONL input: rule files, `data convert` and
`distill --unlabelled`.

`decode_json_line` turns one raw line into a value or a `JSONLineError` whose reason
names what is wrong (bad UTF-8 or a UTF-16 file, a NUL byte, invalid JSON, nesting
beyond the recursion limit, an integer beyond Python's int-to-str limit, an escaped
lone surrogate, a repeated key); the caller adds file and line and decides whether to
collect the problem (rules check shows all) or raise (data readers stop at the first).
`input_lines` opens a path only when it is a regular file and streams its raw lines.
"""
from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import Errors, SparseExpertError

# Sentinel for lines that hold no value (blank; "#" comments where allowed).
SKIP: Any = type("Skip", (), {"__repr__": lambda self: "SKIP"})()

# One record of training data or one rule is far below this; a file without newlines
# must not be read whole into memory before anything is said about it.
MAX_LINE_BYTES = 64 * 1024 * 1024

# Longest first: the UTF-32 little-endian mark starts with the UTF-16 one.
_WIDE_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32 (little-endian)"), (b"\x00\x00\xfe\xff", "UTF-32 (big-endian)"),
              (b"\xff\xfe", "UTF-16 (little-endian)"), (b"\xfe\xff", "UTF-16 (big-endian)"))


class JSONLineError(ValueError):
    """What is wrong with one line: `reason` (no file or line), `field` ("" for the line)."""

    def __init__(self, reason: str, field: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


def decode_json_line(raw: bytes | str, *, first_line: bool = False, comments: bool = False,
                     parse_constant: Callable[[str], Any] | None = None) -> Any:
    """Decode one line of a JSONL file.

    raw (bytes | str): the line, with or without its line break.
    first_line (bool): a UTF-8 byte order mark is skipped on the first line only.
    comments (bool): lines starting with "#" are skipped.
    parse_constant: passed to json.loads (NaN, Infinity).
    RETURNS: the value, or SKIP for a blank or comment line. Raises JSONLineError.
    """
    if isinstance(raw, bytes):
        for bom, encoding in _WIDE_BOMS if first_line else ():
            if raw.startswith(bom):
                raise JSONLineError(f"not valid UTF-8: the file is {encoding} (it starts with a byte order "
                                    "mark); save it as UTF-8")
        try:
            text = raw.decode("utf8")
        except UnicodeDecodeError as exc:
            raise JSONLineError(f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1} "
                                "(Latin-1 or Windows-1252 text?); save the file as UTF-8") from None
    else:
        text = raw
    text = text.strip().lstrip("\ufeff") if first_line else text.strip()
    if not text or (comments and text.startswith("#")):
        return SKIP
    nul = text.find("\x00")
    if nul >= 0:
        raise JSONLineError(f"a NUL byte at column {nul + 1} (a UTF-16 or binary file?); JSONL is UTF-8 text")
    if text.startswith("\ufeff"):  # what json.loads says (JSONDecoder.decode does not check)
        raise JSONLineError("invalid JSON at column 1: Unexpected UTF-8 BOM (decode using utf-8-sig)")
    try:
        value = _decoder(parse_constant).decode(text)
    except _RepeatedKey as exc:
        raise JSONLineError("field given more than once on this line", exc.key) from None
    except json.JSONDecodeError as exc:
        raise JSONLineError(f"invalid JSON at column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise JSONLineError(f"invalid JSON: nested too deeply (more than ~{sys.getrecursionlimit()} "
                            "levels of arrays or objects)") from None
    except ValueError as exc:  # an integer of more than sys.get_int_max_str_digits() digits
        raise JSONLineError(f"invalid JSON: {exc}") from None
    if "\\u" in text and has_lone_surrogate(value):
        raise JSONLineError("a string holds an escaped lone surrogate (\\ud800-\\udfff), which is not a "
                            "Unicode character")
    return value


def has_lone_surrogate(value: Any) -> bool:
    """Whether any string (or key) in a decoded JSON value holds a lone surrogate. Walks
    with an explicit stack: the value may be nested up to the recursion limit."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def check_input_file(path: Path, missing: str, *, suffix: str = "") -> Path:
    """Refuse a path that is not a regular file, each case with its own coded error.

    missing (str): the message when nothing is at `path` (the caller's "does not exist").
    suffix (str): the kind of file wanted (".jsonl", ".spacy"): a directory's matching
        files are named as examples to pass instead.
    """
    try:
        mode_is_dir, exists, is_file = path.is_dir(), path.exists(), path.is_file()
    except OSError as err:  # a name too long, a loop of symlinks
        raise SparseExpertError(Errors.E013.format(path=path, reason=err.strerror or err)) from None
    if mode_is_dir:
        found = sorted(p.name for p in path.glob(f"*{suffix}") if p.is_file())[:5] if suffix else []
        hint = f" It holds {', '.join(found)}." if found else ""
        raise SparseExpertError(Errors.E140.format(path=path, suffix=suffix or "data", hint=hint))
    if not exists:
        raise SparseExpertError(missing)
    if not is_file:
        raise SparseExpertError(Errors.E141.format(path=path))
    return path


def input_lines(path: Path, missing: str, *, suffix: str = ".jsonl", max_line_bytes: int | None = None,
                bad_line: str = "") -> Iterator[tuple[int, bytes]]:
    """Yield (line number, raw line) of a regular file; "\\r\\n", "\\n" and "\\r" end lines
    as in text mode. Read failures raise SparseExpertError (E013); a line longer than
    `max_line_bytes` (default MAX_LINE_BYTES, read at call time) raises `bad_line` (a
    template of path, line, reason) or E142."""
    check_input_file(path, missing, suffix=suffix)
    max_line_bytes = MAX_LINE_BYTES if max_line_bytes is None else max_line_bytes
    lineno = 0
    try:
        with path.open("rb") as f:
            while True:
                chunk = f.readline(max_line_bytes + 1)
                if not chunk:
                    return
                if len(chunk) > max_line_bytes and not chunk.endswith(b"\n"):
                    reason = (f"a line longer than {max_line_bytes:,} bytes; split it, or raise "
                              "max_line_bytes (spacy_sparse_expert.jsonl.MAX_LINE_BYTES)")
                    template = bad_line or Errors.E142
                    raise SparseExpertError(template.format(path=path, line=lineno + 1, reason=reason))
                for line in chunk.splitlines():
                    lineno += 1
                    yield lineno, line
    except OSError as err:
        raise SparseExpertError(Errors.E013.format(path=path, reason=err.strerror or err)) from None


def json_lines(path: str | Path, bad_line: str) -> Iterator[tuple[int, object]]:
    """Yield (line number, parsed value) for each non-blank line of a JSONL file, read
    with `input_lines` and `decode_json_line` (data files: no comments).

    A missing file raises SparseExpertError (E042), a directory E140, a FIFO or device
    E141; a line that is not UTF-8 JSON raises SparseExpertError with the message
    ``bad_line`` (an Errors template taking path, line and reason).
    """
    path = Path(path)
    for lineno, raw in input_lines(path, Errors.E042.format(path=path), bad_line=bad_line):
        try:
            value = decode_json_line(raw, first_line=lineno == 1)
        except JSONLineError as e:
            where = f"{e.reason} (field {e.field!r})" if e.field else e.reason
            raise SparseExpertError(bad_line.format(path=path, line=lineno, reason=where)) from None
        if value is not SKIP:
            yield lineno, value


def show_value(value: Any, limit: int = 60) -> str:
    """A JSON value for an error message: short, and safe for any nesting or size."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except (RecursionError, ValueError):  # deep nesting; an int beyond the int-to-str limit
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _RepeatedKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """object_pairs_hook: json.loads would silently keep the last of a repeated key."""
    result = dict(pairs)
    if len(result) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return result


# one decoder per parse_constant: json.loads(text, **hooks) builds a JSONDecoder on every
# call, a third of the time of decoding a short line
@functools.lru_cache(maxsize=8)
def _decoder(parse_constant: Callable[[str], Any] | None) -> json.JSONDecoder:
    return json.JSONDecoder(object_pairs_hook=_refuse_repeated_keys, parse_constant=parse_constant)


__all__ = ["JSONLineError", "MAX_LINE_BYTES", "SKIP", "check_input_file", "decode_json_line",
           "has_lone_surrogate", "input_lines", "json_lines", "show_value"]
