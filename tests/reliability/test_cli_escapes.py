"""Text from files is shown, never obeyed: RDF labels, IRIs, file names, rule file content
and data labels with terminal control sequences (C0, ESC, DEL, C1 incl. the CSI byte
0x9b), bidi overrides and isolates, line separators, Rich markup and emoji codes go through
`kb info`, `kb lookup` (table and --json), `rules check` (table, --json, errors), `data
convert` and `distill` (errors and the summary table) and come out escaped or literal."""
from __future__ import annotations

import io
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import spacy
from rich.console import Console
from typer.testing import CliRunner, Result

from spacy_sparse_expert.kb.compile import compile_kb
from spacy_sparse_expert.cli._text import safe_json, safe_text
from spacy_sparse_expert.cli.distill import print_summary
from spacy_sparse_expert.cli.main import app
from spacy_sparse_expert.distill.evaluate import ModelStats
from spacy_sparse_expert.distill.trainer import DistillResult, PruneReport
from spacy_sparse_expert.kb.compile import import_rdf

from ..distill.conftest import LABELS, TRAIN, UNLABELLED, make_docbin, student_config, train_teacher

# What a terminal would obey or that reorders or breaks lines; "\t" and "\n" are layout.
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
BIDI = [0x061C, 0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
# every single unsafe character, then whole sequences and markup
CHARS = [chr(c) for c in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), *BIDI]]
SEQUENCES = ["\x1b[2J\x1b[H", "\x1b]0;pwned\x07", "\x9b2J", "\x9d0;title\x9c", "\x1b]8;;http://evil.example\x1b\\x",
             "\x1bc", "\u202eexe.txt"]
MARKUP = ["[bold]loud[/bold]", "[link=http://evil.example]click[/link]", ":smile:", "[/]", "[red"]
PAYLOADS = [f"x{c}y" for c in CHARS] + SEQUENCES + MARKUP
EX = "http://example.org/"


@pytest.fixture(autouse=True)
def plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """No forced colours: then the only escape sequences in the output would be ours."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "400")


def cli(*args: object) -> Result:
    # color=True: click would otherwise strip "\x1b[...X" sequences from the captured
    # output, hiding from the test exactly what a real terminal would receive
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False, color=True)


def assert_inert(output: str) -> None:
    found = RAW.search(output)
    assert found is None, f"raw {found.group()!r} in {output[max(0, found.start() - 80):found.start() + 80]!r}"


def turtle_string(text: str) -> str:
    """A Turtle string literal holding `text`, every non-ASCII or control char as \\uXXXX."""
    return '"' + "".join(c if " " <= c <= "~" and c not in '"\\' else f"\\u{ord(c):04x}" for c in text) + '"'


@pytest.fixture(scope="module")
def kb_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real KB imported from a Turtle file (whose name is itself a payload): entity i is
    labelled PAYLOADS[i] and has the alias "shared"."""
    root = tmp_path_factory.mktemp("escapes")
    lines = ["@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .",
             "@prefix skos: <http://www.w3.org/2004/02/skos/core#> ."]
    for i, payload in enumerate(PAYLOADS):
        lines.append(f"<{EX}e{i}> rdfs:label {turtle_string(payload)} ; skos:altLabel \"shared\" ; "
                     f"a <{EX}Type{i % 3}> .")
    source = root / "src\x1b[2J\u202e[bold].ttl"
    source.write_text("\n".join(lines) + "\n", encoding="ascii")
    out = root / "kb\x9b2J\u2066[red]"
    import_rdf([source], out, max_candidates=len(PAYLOADS) + 1)
    yield out
    shutil.rmtree(root, ignore_errors=True)


def test_kb_lookup_table_shows_every_label_escaped(kb_dir: Path) -> None:
    result = cli("kb", "lookup", kb_dir, "shared", "--limit", len(PAYLOADS))
    assert result.exit_code == 0, result.output
    assert_inert(result.output)
    for payload in PAYLOADS:
        assert safe_text(payload) in result.output, payload
    assert "[bold]loud[/bold]" in result.output and "[link=http://evil.example]click[/link]" in result.output
    assert ":smile:" in result.output and "\U0001f604" not in result.output  # not turned into an emoji


@pytest.mark.parametrize("index", [CHARS.index(c) for c in "\x1b\x9b\u202e"] + [len(CHARS), len(PAYLOADS) - 4])
def test_kb_lookup_by_iri(kb_dir: Path, index: int) -> None:
    result = cli("kb", "lookup", kb_dir, f"{EX}e{index}")
    assert result.exit_code == 0, result.output
    assert_inert(result.output)
    assert safe_text(PAYLOADS[index]) in result.output


def test_kb_lookup_json_is_escaped_and_exact(kb_dir: Path) -> None:
    result = cli("kb", "lookup", kb_dir, "shared", "--limit", len(PAYLOADS), "--json")
    assert result.exit_code == 0, result.output
    assert_inert(result.output)
    data = json.loads(result.output)
    assert sorted(c["label"] for c in data["candidates"]) == sorted(PAYLOADS)  # JSON escapes lose nothing


def test_kb_lookup_of_a_payload_query(kb_dir: Path) -> None:
    for query in SEQUENCES + MARKUP:
        result = cli("kb", "lookup", kb_dir, query)
        assert result.exit_code == 0, result.output
        assert_inert(result.output)
        assert safe_text(repr(query)) in result.output  # in "No entity has ..." or "Candidates for ..."


def test_kb_info_escapes_paths_from_meta(kb_dir: Path) -> None:
    result = cli("kb", "info", kb_dir)
    assert result.exit_code == 0, result.output
    assert_inert(result.output)
    assert "src\\x1b[2J\\u202e[bold].ttl" in result.output and "kb\\x9b2J\\u2066[red]" in result.output
    as_json = cli("kb", "info", kb_dir, "--json")
    assert as_json.exit_code == 0
    assert_inert(as_json.output)
    assert json.loads(as_json.output)["sources"][0]["path"].endswith("src\x1b[2J\u202e[bold].ttl")


def test_kb_errors_escape_the_path(tmp_path: Path) -> None:
    for payload in SEQUENCES + MARKUP:
        missing = tmp_path / f"no{payload}kb"
        for args in (("kb", "info", missing), ("kb", "lookup", missing, "x")):
            result = cli(*args)
            assert result.exit_code == 1
            assert_inert(result.output)
            assert "Traceback" not in result.output and "[SSE-E" in result.output


# --- rules check ------------------------------------------------------------------------


def test_rules_check_escapes_file_content_and_name(tmp_path: Path) -> None:
    lines = [json.dumps({"id": f"r{i}", "phrase": "x", payload: 1}) for i, payload in enumerate(PAYLOADS)]
    lines += [json.dumps({"id": "s", "phrase": "x", "labels": {payload: 1 for payload in SEQUENCES}})]
    path = tmp_path / "rules\x1b]0;t\x07\u202e.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf8")
    result = cli("rules", "check", path, "--labels", "sport")
    assert result.exit_code == 1
    assert_inert(result.output)
    assert "Traceback" not in result.output
    for payload in PAYLOADS:
        assert safe_text(payload) in result.output, payload
    assert "[bold]loud[/bold]" in result.output and ":smile:" in result.output
    as_json = cli("rules", "check", path, "--labels", "sport", "--json")
    assert_inert(as_json.output)
    assert {p["field"] for p in json.loads(as_json.output)["problems"]} >= set(PAYLOADS)


def test_rules_check_ok_line_and_errors_escape_the_name(tmp_path: Path) -> None:
    for payload in SEQUENCES + MARKUP:
        path = tmp_path / f"ok{payload.replace('/', '_')}.jsonl"
        path.write_text('{"id": "a", "phrase": "x"}\n', encoding="utf8")
        ok = cli("rules", "check", path)
        assert ok.exit_code == 0 and "OK:" in ok.output, ok.output
        assert_inert(ok.output)
        missing = cli("rules", "check", tmp_path / f"gone{payload.replace('/', '_')}.jsonl")
        assert missing.exit_code == 1 and "[SSE-E021]" in missing.output
        assert_inert(missing.output)


# --- data convert and distill -------------------------------------------------------------


def test_data_convert_escapes_labels_and_paths(tmp_path: Path) -> None:
    src = tmp_path / "in\x1b[2J.jsonl"
    src.write_text("".join(json.dumps({"text": "t", "label": p}) + "\n" for p in PAYLOADS), encoding="utf8")
    result = cli("data", "convert", src, tmp_path / "out\u202e.spacy")
    assert result.exit_code == 0, result.output
    assert_inert(result.output)
    assert safe_text("\x9b2J") in result.output and "[bold]loud[/bold]" in result.output
    bad = cli("data", "convert", src, tmp_path / "out2.spacy", "--labels", "a")
    assert bad.exit_code == 1 and "[SSE-E040]" in bad.output
    assert_inert(bad.output)


def test_distill_errors_escape_paths(tmp_path: Path) -> None:
    for payload in SEQUENCES + MARKUP:
        result = cli("distill", tmp_path / f"t{payload.replace('/', '_')}", "--output", tmp_path / "s",
                     "--unlabelled", tmp_path / "u.jsonl", "--quiet")
        assert result.exit_code == 1 and "[SSE-E050]" in result.output
        assert_inert(result.output)


def test_distill_summary_table(tmp_path: Path) -> None:
    """The summary the command prints, for a result whose paths are payloads."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=400, markup=False, emoji=False, highlight=False)
    for payload in (p.replace("/", "_") for p in PAYLOADS):  # a "/" would be a path separator
        stats = ModelStats(params=1000, disk_bytes=2000, words_per_second=3.0, macro_f1=None)
        result = DistillResult(output=tmp_path / f"out{payload}", teacher=stats, student=stats, seconds=1.0,
                               pruning=PruneReport([0, 1], [0.5, 0.5], [16, 8], [16, 16], [1000, 500]))
        print_summary(console, result, teacher=tmp_path / f"t{payload}", measured_f1=False)
        shown = "".join(buffer.getvalue().split())  # the title wraps at the table's width
        assert "".join(safe_text(f"{tmp_path}/out{payload}").split()) in shown
        assert "".join(safe_text(f"{tmp_path}/t{payload}").split()) in shown
    assert_inert(buffer.getvalue())
    assert "pruning: experts kept [0, 1]" in buffer.getvalue()


@pytest.mark.slow
def test_distill_summary_after_a_real_run(tmp_path: Path) -> None:
    """The summary table after a real (tiny) distillation (10 s): its title quotes the
    teacher and output paths; the report line quotes the report path."""
    kb = tmp_path / "kb"
    compile_kb([Path(__file__).parent.parent / "fixtures" / "component_kb.ttl"]).to_disk(kb)
    teacher = train_teacher(tmp_path / "teacher\x1b]0;t\x07[bold]", kb, steps=2)
    train = make_docbin(spacy.blank("en"), tmp_path / "train.spacy", TRAIN, labels=LABELS)
    unlabelled = tmp_path / "u.jsonl"
    unlabelled.write_text("".join(json.dumps({"text": t}) + "\n" for t in UNLABELLED), encoding="utf8")
    config = tmp_path / "student.cfg"
    student_config(epochs=1).to_disk(config)
    out, report = tmp_path / "student\x9b2J\u202e", tmp_path / "report\u2066:smile:.json"
    result = cli("distill", teacher, "--output", out, "--config", config, "--train", train, "--quiet",
                 "--report", report, "--distill.prune.finetune_epochs", "0")
    assert result.exit_code == 0, result.output
    assert_inert(result.output)
    assert "teacher\\x1b]0;t\\x07[bold]" in result.output and "student\\x9b2J\\u202e" in result.output
    assert "report\\u2066:smile:.json" in result.output and report.is_file()


def test_safe_json_is_the_same_json() -> None:
    value = {p: [p, {"k": p}] for p in PAYLOADS}
    text = safe_json(value, indent=1)
    assert_inert(text)
    assert json.loads(text) == value
