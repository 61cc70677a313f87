"""Which spaCy token patterns make the Matcher do unbounded work (rule files warn, W020;
the rule matcher runs them in bounded work, features/bounded_patterns.py).

Pure analysis of the pattern (no spaCy), so rule validation can say it without a pipeline.
"""
from __future__ import annotations

import re
from typing import Any, Optional, Sequence

# A match is cut at this many tokens: a title-case run or a list of names is rarely longer,
# and it bounds the work per start position.
DEFAULT_MAX_MATCH_LENGTH = 32
# Patterns with more optional steps than this (each `?` is one, `{n,m}` is m - n) leave
# spaCy's Matcher: its cost grows steeply with them (10,000 tokens: {1,4} 0.3 s, {1,8}
# 1.5 s, {1,10} 6.6 s).
MAX_OPTIONAL_STEPS = 4
# An OP of the form {n}, {n,m}, {n,} or {,m}.
OP_RANGE = re.compile(r"^\{(\d*)(,?)(\d*)\}$")


def unbounded_reason(pattern: Sequence[Any], *, max_optional: int = MAX_OPTIONAL_STEPS) -> Optional[str]:
    """Why spaCy's Matcher would do unbounded work on `pattern`, or None if it would not.

    RETURNS (Optional[str]): e.g. 'token 0 has OP "+"', or None.
    """
    optional = 0
    for i, spec in enumerate(pattern):
        op = spec.get("OP") if isinstance(spec, dict) else None
        if op in ("+", "*"):
            return f'token {i} has OP "{op}" (no upper bound)'
        if op == "?":
            optional += 1
        elif isinstance(op, str) and (m := OP_RANGE.match(op)):
            low, comma, high = m.groups()
            if comma and not high:
                return f'token {i} has OP "{op}" (no upper bound)'
            if comma:
                optional += int(high) - int(low or 0)
    if optional > max_optional:
        return f"{optional} optional tokens (? or {{n,m}}), more than {max_optional}"
    return None


__all__ = ["DEFAULT_MAX_MATCH_LENGTH", "MAX_OPTIONAL_STEPS", "OP_RANGE", "unbounded_reason"]
