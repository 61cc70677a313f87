"""Rule labels that match no component label ("Sport" for "sport") are reported.

`sparse-expert rules check FILE --labels ...` lists each such label with its line, field
and the closest real label, and exits 1 (no traceback); the component's `initialize`
warns once (W010) naming each rule id, line, label and close match.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import spacy
from hypothesis import given
from hypothesis import strategies as st
from spacy.training import Example

from spacy_sparse_expert.rules.loaders import load_rules_v1
from spacy_sparse_expert.rules.rule_labels import close_label, unknown_rule_labels
from spacy_sparse_expert.rules.rules import RuleSet

from .conftest import FAST, run_cli

BBC = ["business", "entertainment", "politics", "sport", "tech"]


def typos(label: str) -> list[str]:
    """The usual ways a label gets mistyped: case, spaces, one letter dropped, doubled,
    swapped with its neighbour, or a plural s."""
    forms = [label.upper(), label.capitalize(), f" {label} ", label + "s"]
    for i in range(len(label)):
        forms.append(label[:i] + label[i + 1:])
        forms.append(label[:i] + label[i] + label[i:])
    for i in range(len(label) - 1):
        forms.append(label[:i] + label[i + 1] + label[i] + label[i + 2:])
    return [f for f in forms if f != label]


@pytest.mark.parametrize("label", BBC)
def test_every_typo_of_a_label_finds_it(label: str) -> None:
    for typo in typos(label):
        assert close_label(typo, BBC) == label, typo


def test_no_suggestion_for_an_unrelated_label() -> None:
    for other in ("weather", "xyz", "health", "science"):
        assert close_label(other, BBC) is None, other


@FAST
@given(label=st.text(min_size=1, max_size=20))
def test_a_suggestion_is_always_a_real_label(label: str) -> None:
    found = close_label(label, BBC)
    assert found is None or found in BBC
    if label in BBC:
        assert found == label


def _rule_file(path: Path, labels: list[str]) -> Path:
    lines = ["# rules naming these labels, one per line from line 2"]
    lines += [json.dumps({"id": f"rule-{i}", "phrase": f"word{i}", "labels": {label: 1.0}})
              for i, label in enumerate(labels)]
    path.write_text("\n".join(lines) + "\n", encoding="utf8")
    return path


def test_unknown_rule_labels_lists_rule_line_label_and_match(tmp_path: Path) -> None:
    rules = RuleSet.from_file(_rule_file(tmp_path / "r.jsonl", ["Sport", "sport", "weather", "Tech"]))
    found = unknown_rule_labels(rules, BBC)
    assert [(m.rule_id, m.line, m.label, m.suggestion) for m in found] == [
        ("rule-0", 2, "Sport", "sport"), ("rule-2", 4, "weather", None), ("rule-3", 5, "Tech", "tech")]


# --- sparse-expert rules check --labels ----------------------------------------------------


@pytest.mark.parametrize("label", ["Sport", "sports", "SPORT", "sprot"])
@pytest.mark.parametrize("how", ["comma", "repeated"])
def test_rules_check_reports_a_label_typo(tmp_path: Path, label: str, how: str) -> None:
    path = _rule_file(tmp_path / "r.jsonl", ["business", label])
    args = ["--labels", ",".join(BBC)] if how == "comma" else [a for x in BBC for a in ("--labels", x)]
    result = run_cli("rules", "check", path, *args)
    output = " ".join(result.output.split())
    assert result.exit_code == 1 and "Traceback" not in output, output
    assert f"labels.{label}" in output and "did you mean 'sport'?" in output, output
    result = run_cli("rules", "check", path, *args, "--json")
    report = json.loads(result.output)
    assert result.exit_code == 1 and not report["ok"]
    assert [(p["line"], p["field"]) for p in report["problems"]] == [(3, f"labels.{label}")]
    assert "did you mean 'sport'?" in report["problems"][0]["message"]


def test_rules_check_repeated_and_comma_labels_agree(tmp_path: Path) -> None:
    path = _rule_file(tmp_path / "r.jsonl", BBC)
    assert run_cli("rules", "check", path, "--labels", ",".join(BBC)).exit_code == 0
    assert run_cli("rules", "check", path, "--labels", "business,politics", "--labels", "sport",
                   "--labels", "tech,entertainment").exit_code == 0
    result = run_cli("rules", "check", path, "--labels", "business,politics", "--labels", "sport", "--json")
    assert result.exit_code == 1
    fields = [p["field"] for p in json.loads(result.output)["problems"]]
    assert fields == ["labels.entertainment", "labels.tech"]


def test_rules_check_refuses_empty_labels(tmp_path: Path) -> None:
    path = _rule_file(tmp_path / "r.jsonl", ["Sport"])
    result = run_cli("rules", "check", path, "--labels", " , ")
    assert result.exit_code == 2 and "--labels" in result.output and "Traceback" not in result.output


# --- initialize ------------------------------------------------------------------------


def _initialize(rules_file: Path, labels: list[str]) -> None:
    nlp = spacy.blank("en")
    model = {"@architectures": "spacy-sparse-expert.MoETextCat.v1", "exclusive_classes": True, "n_experts": 2,
             "k": 1, "d_ff": 8, "capacity_factor": None, "n_moe_layers": 1, "d_knowledge": 8,
             "pooling": "attention", "bow_rows": 256, "ngram_size": 1, "dropout": 0.0,
             "encoder": {"@architectures": "spacy-sparse-expert.HashEncoder.v1", "width": 8,
                         "rows": [100, 50, 50, 50], "depth": 1, "d_hidden": 8, "dropout": 0.0}}
    textcat = nlp.add_pipe("sparse_expert_textcat", name="textcat", config={"model": model})
    examples = [Example.from_dict(nlp.make_doc(f"text {label}"), {"cats": {x: float(x == label) for x in labels}})
                for label in labels]
    textcat.initialize(lambda: examples, nlp=nlp, rules_loader=load_rules_v1(str(rules_file)))


def test_initialize_warns_about_a_label_typo(tmp_path: Path) -> None:
    path = _rule_file(tmp_path / "r.jsonl", ["sport", "Sport", "weather"])
    with pytest.warns(UserWarning, match=r"SSE-W010") as record:
        _initialize(path, ["business", "politics", "sport"])
    message = " ".join(str(w.message) for w in record if "SSE-W010" in str(w.message))
    assert message.count("SSE-W010") == 1  # one warning listing all, not one per rule
    for part in ("2 rule label(s)", str(path), "'textcat'", "rule 'rule-1' (line 3): label 'Sport' "
                 "(did you mean 'sport'?)", "rule 'rule-2' (line 4): label 'weather'"):
        assert part in message, message
    assert "rule-0" not in message


def test_initialize_is_silent_when_labels_match(tmp_path: Path) -> None:
    path = _rule_file(tmp_path / "r.jsonl", ["sport", "business"])
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r".*SSE-W010")
        _initialize(path, ["business", "politics", "sport"])
