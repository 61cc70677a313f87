"""docs/: the generated reference parts match the code (defaults, settings, commands),
every registered name and command has its block, every setting has a description, and
every link between the pages (and from the README) points at a file and heading that
exist."""
from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path
from types import ModuleType
from typing import List, Set

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.fixture(scope="module")
def make_reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_reference", DOCS / "make_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_pages_are_up_to_date(make_reference: ModuleType) -> None:
    found = make_reference.problems(DOCS, write=False)
    assert found == [], "\n".join(found)


def test_a_changed_default_or_a_lost_block_is_caught(make_reference: ModuleType, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    page = docs / "api" / "architectures.md"
    text = page.read_text(encoding="utf-8")
    row = "| `n_experts` | `int` | `4` |"
    assert row in text  # the real default, generated from build_moe_textcat_v1
    page.write_text(text.replace(row, "| `n_experts` | `int` | `8` |"), encoding="utf-8")
    assert make_reference.problems(docs) == ["docs/api/architectures.md: stale; run python docs/make_reference.py"]
    # rewriting restores the real default
    assert make_reference.problems(docs, write=True) == []
    assert row in page.read_text(encoding="utf-8")
    # a page without the block of a registered architecture
    start = text.index("<!-- reference: architecture spacy-sparse-expert.HashEncoder.v1 -->")
    end = text.index("<!-- /reference -->", start) + len("<!-- /reference -->")
    page.write_text(text[:start] + text[end:], encoding="utf-8")
    assert make_reference.problems(docs) == [
        "no block `<!-- reference: architecture spacy-sparse-expert.HashEncoder.v1 -->` in any page of docs/"]


def test_generated_defaults_are_the_ones_spacy_fills_in(make_reference: ModuleType) -> None:
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("sparse_expert_textcat_multilabel")
    cfg = nlp.config["components"]["sparse_expert_textcat_multilabel"]
    page = (DOCS / "api" / "sparse_expert_textcat_multilabel.md").read_text(encoding="utf-8")
    for key in ("threshold", "use_knowledge", "load_balancing_weight", "z_loss_weight", "max_batch_tokens"):
        value = make_reference.config_value(cfg[key])
        assert re.search(rf"^\| `{key}` \| [^|]* \| {re.escape(value)} \|", page, re.MULTILINE), key
    model = cfg["model"]
    arch = (DOCS / "api" / "architectures.md").read_text(encoding="utf-8")
    for key in ("n_experts", "k", "bow_scale", "path_dropout", "pooling"):
        assert f"| `{key}` | `" in arch and make_reference.config_value(model[key]) in arch, key


def test_docstring_entries_are_read_whole(make_reference: ModuleType) -> None:
    from spacy_sparse_expert.kb.loaders import load_kb_v1
    from spacy_sparse_expert.pipeline.factories import make_sparse_expert_textcat

    # a description wrapped without indentation, followed by RETURNS on the same line
    _, entries = make_reference.parse_docstring(load_kb_v1)
    type_, text = entries["path"]
    assert type_ == "Optional[str]"
    assert text.endswith("or null for none.") and "RETURNS" not in text
    # a description over several indented lines
    _, entries = make_reference.parse_docstring(make_sparse_expert_textcat)
    assert entries["max_batch_tokens"][1].endswith("(without capacity_factor).")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to '-'."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> Set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, re.MULTILINE)}


def _pages() -> List[Path]:
    return sorted(DOCS.rglob("*.md")) + [REPO / "README.md"]


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_links_point_at_existing_files_and_headings(page: Path) -> None:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        path = (page.parent / path_part).resolve() if path_part else page
        assert path.exists(), f"{page.relative_to(REPO)}: link to missing {target}"
        if anchor and path.suffix == ".md":
            assert anchor in _anchors(path), f"{page.relative_to(REPO)}: no heading #{anchor} in {path_part}"


def test_every_page_is_reachable_from_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "docs/README.md" in readme
    index = DOCS / "README.md"
    linked = {(index.parent / t.partition("#")[0]).resolve() for t in LINK.findall(index.read_text(encoding="utf-8"))}
    for page in sorted(DOCS.rglob("*.md")):
        assert page == index or page.resolve() in linked, f"docs/README.md does not link {page.relative_to(REPO)}"
