"""Write knowledge/rules/sentiment.jsonl, a sentiment lexicon with negation, from VADER's lexicon.

    python knowledge/build_sentiment_rules.py [--output knowledge/rules/sentiment.jsonl]

Input: `vader_lexicon.txt` of the installed PyPI package vaderSentiment 3.3.2 (MIT licence,
C.J. Hutto; knowledge/LICENSE-vader.MIT), checked against its sha256 so the output is the
shipped file byte for byte. Each lexicon line is: token, mean valence (-4..+4, the mean of
ten raters), standard deviation, the ten ratings.

What is kept: entries made of letters (words, hyphenated words, the three multi-word entries
"can't stand", "fed up", "screwed up"); emoticons, numbers and leetspeak ("h8", "w00t") are
dropped, and so are the entries that are themselves negators ("no"). A word has a clear
valence when |mean| >= 0.5 and the mean is at least two standard errors (std / sqrt(10))
from zero: the raters agree on its direction.

Rules: the words are grouped by polarity and valence rounded to 0.5 (at most eight buckets
per polarity). Grouping keeps the file to a few dozen rules (each rule is one feature id of
the model, so a bucket learns from every word in it instead of one id per rare word):

- ``vader-positive-2.0``: any word of the bucket -> label evidence {"positive": 2.0}, the
  bucket's valence (SCORE_PER_VALENCE = 1; chosen on dev against valence / 4: the model
  sums the hits and log-compresses the sum, and a weaker prior was trained away on 96
  sentences: dev macro-F1 0.73 against 0.69 after training on train_small);
- ``vader-positive-2.0-negated``: a negator ("not", "n't", "never", "no", "hardly", ... as
  spaCy's NORM, so "didn't", "dont" and "cannot" count) followed within two tokens by a word
  of the bucket -> {"positive": -2.0, "negative": 0.74 * 2.0}. Both rules fire on "not
  good", so the sum cancels the positive evidence and leaves VADER's flipped valence
  (N_SCALAR = -0.74) as negative evidence. The tokens between may not be negators (one
  negator flips a word once) or punctuation (a clause break ends the scope); the two
  optional tokens keep the pattern inside spaCy's Matcher (bounded; no SSE-W020).

The output depends only on the lexicon, VADER's negator list and spaCy's English tokenizer
(multi-word entries and negators are tokenized with it), and is written in a fixed order.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import math
import re
import sys
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent / "rules" / "sentiment.jsonl"
VADER_VERSION = "3.3.2"
LEXICON_SHA256 = "1ec9c6e9ee19aade328f8beb393a6afa71a5bb3acf7d3cc22d4ef568df374bf5"
LABELS = {1: "positive", -1: "negative"}
SCORE_PER_VALENCE = 1.0  # label score of a word = its bucket valence (0.5..4); chosen on dev
MIN_VALENCE = 0.5     # weaker words are near neutral
N_SCALAR = -0.74      # VADER's factor for a negated word (vaderSentiment.N_SCALAR)
BUCKET = 0.5          # valence resolution of the rules
MAX_GAP = 2           # VADER looks three tokens back: the negator and at most two between
# Negators besides VADER's NEGATE list: "no" (VADER scores it as a word, -1.2) and the
# near-negative adverbs, which read as negation before a sentiment word ("hardly edible").
EXTRA_NEGATORS = ("no", "hardly", "barely", "scarcely")
WORD = re.compile(r"[a-z]+(?:['\- ][a-z]+)*")


def lexicon_path() -> Path:
    spec = importlib.util.find_spec("vaderSentiment")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"vaderSentiment is not installed: pip install vaderSentiment=={VADER_VERSION}")
    return Path(list(spec.submodule_search_locations)[0]) / "vader_lexicon.txt"


def read_lexicon(path: Path) -> list[tuple[str, float, float, int]]:
    """(token, mean, std, number of ratings) per line, after checking the file's sha256."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != LEXICON_SHA256:
        raise SystemExit(f"{path} has sha256 {digest}, not {LEXICON_SHA256} (vaderSentiment {VADER_VERSION}); "
                         f"install vaderSentiment=={VADER_VERSION} to rebuild the shipped file")
    out = []
    for n, line in enumerate(data.decode("utf8").splitlines(), 1):
        parts = line.split("\t")
        if len(parts) != 4:
            raise SystemExit(f"{path}:{n}: expected 4 tab-separated fields, got {len(parts)}: {line!r}")
        out.append((parts[0], float(parts[1]), float(parts[2]), len(json.loads(parts[3]))))
    return out


def vader_negators() -> list[str]:
    from vaderSentiment.vaderSentiment import NEGATE  # imported for its list only

    return list(NEGATE)


def negator_norms(tokenizer) -> list[str]:
    """NORM values of the negators: spaCy splits "didn't" into "did" + "n't" (NORM "not"),
    "dont" into "do" + "nt" (NORM "not"), "cannot" into "can" + "not"."""
    norms = set()
    for word in [*vader_negators(), *EXTRA_NEGATORS]:
        tokens = tokenizer(word)
        if len(tokens) == 1:
            norms.add(tokens[0].norm_.lower())
        elif any(t.norm_ == "not" for t in tokens):
            norms.add("not")
        # else a spelling such as "uh-uh" that the tokenizer splits: no single token to test
    return sorted(norms)


def clear(mean: float, std: float, n: int) -> bool:
    return abs(mean) >= MIN_VALENCE and abs(mean) >= 2 * std / math.sqrt(n)


def build(lexicon: list[tuple[str, float, float, int]], tokenizer) -> list[dict]:
    negators = negator_norms(tokenizer)
    buckets: dict[tuple[int, float], list[list[str]]] = {}
    for token, mean, std, n in lexicon:
        if not WORD.fullmatch(token) or token in negators or not clear(mean, std, n):
            continue
        words = [t.lower_ for t in tokenizer(token)]
        key = (1 if mean > 0 else -1, math.floor(abs(mean) / BUCKET + 0.5) * BUCKET)  # half up
        buckets.setdefault(key, []).append(words)
    neg = {"NORM": {"IN": negators}}
    gap = {"NORM": {"NOT_IN": negators}, "IS_PUNCT": False, "OP": "?"}
    rules = []
    for (sign, valence), entries in sorted(buckets.items(), key=lambda kv: (-kv[0][0], -kv[0][1])):
        label, other = LABELS[sign], LABELS[-sign]
        singles = sorted({w[0] for w in entries if len(w) == 1})
        multi = sorted({tuple(w) for w in entries if len(w) > 1})
        word_patterns = [[{"LOWER": {"IN": singles}}]] if singles else []
        word_patterns += [[{"LOWER": w} for w in words] for words in multi]
        score = round(valence * SCORE_PER_VALENCE, 4)
        name = f"vader-{label}-{valence:.1f}"
        rules.append({
            "id": name, "pattern": word_patterns, "labels": {label: score},
            "comment": f"{len(singles) + len(multi)} VADER words whose valence rounds to {sign * valence:+.1f}",
        })
        rules.append({
            "id": f"{name}-negated",
            "pattern": [[neg, *([gap] * MAX_GAP), *p] for p in word_patterns],
            "labels": {label: -score, other: round(-N_SCALAR * score, 4)},
            "comment": f"a negator then, within {MAX_GAP} tokens, a word of {name}: cancels its evidence "
                       f"and adds {-N_SCALAR} of it to {other}",
        })
    return rules


def render(rules: list[dict], lexicon_file: str) -> str:
    header = [
        "# Sentiment lexicon rules for the labels positive / negative, with negation. Written by",
        "# knowledge/build_sentiment_rules.py from VADER's lexicon (vaderSentiment " + VADER_VERSION + ", MIT,",
        f"# C.J. Hutto; knowledge/LICENSE-vader.MIT): {lexicon_file} sha256 {LEXICON_SHA256}.",
        "# Do not edit by hand: rebuild with the script. Format: knowledge/rules/README.md.",
    ]
    lines = [json.dumps(rule, ensure_ascii=False, separators=(", ", ": ")) for rule in rules]
    return "\n".join(header + lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", type=Path, default=OUTPUT, help="the rule file to write")
    args = p.parse_args(argv)
    installed = importlib.metadata.version("vaderSentiment")
    if installed != VADER_VERSION:
        raise SystemExit(f"vaderSentiment {installed} is installed; the shipped file is built from {VADER_VERSION}")
    import spacy  # heavy; only the build needs it

    tokenizer = spacy.blank("en").tokenizer
    rules = build(read_lexicon(lexicon_path()), tokenizer)
    text = render(rules, "vaderSentiment/vader_lexicon.txt")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf8")
    n_words = sum(int(r["comment"].split()[0]) for r in rules if not r["id"].endswith("-negated"))
    print(f"{len(rules)} rules, {n_words} words -> {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
