"""AliasLinker on a tiny KB (tests/fixtures/features_kb.ttl): longest match, prior and
context disambiguation, noise filters; and one check on the real FB15k-237 KB."""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import pytest
import spacy

from spacy_sparse_expert.kb.compile import import_rdf
from spacy_sparse_expert.features.features import KnowledgeFeaturizer
from spacy_sparse_expert.kb.knowledge_base import KnowledgeBase
from spacy_sparse_expert.features.linker import AliasLinker, LinkerConfig, get_linker

EX = "http://example.org/"


def links(nlp, kb: KnowledgeBase, text: str, config: LinkerConfig | None = None) -> List[Tuple[str, str]]:
    linker = get_linker(nlp.vocab, kb, config)
    doc = nlp(text)
    res = linker(doc)
    return [(doc[s:e].text, kb.entities[ent].replace(EX, ""))
            for s, e, ent in zip(res.starts.tolist(), res.ends.tolist(), res.entities.tolist())]


def test_longest_match_wins(nlp, kb) -> None:
    assert links(nlp, kb, "He joined Chelsea Football Club in May.") == [("Chelsea Football Club", "ChelseaFC")]
    assert links(nlp, kb, "Tony Blair spoke.") == [("Tony Blair", "TonyBlair")]


def test_prior_decides_without_context(nlp, kb) -> None:
    # "Chelsea" is the district's label and only an altLabel of the club
    assert links(nlp, kb, "She lives in Chelsea.") == [("Chelsea", "ChelseaDistrict")]


def test_context_overrides_prior(nlp, kb) -> None:
    got = links(nlp, kb, "Chelsea beat Arsenal 2-1 at Stamford Bridge.")
    assert got == [("Chelsea", "ChelseaFC"), ("Arsenal", "ArsenalFC"), ("Stamford Bridge", "StamfordBridge")]


def test_pronoun_and_stop_word_aliases_never_link(nlp, kb) -> None:
    assert links(nlp, kb, "His decision surprised Blair.") == [("Blair", "TonyBlair")]
    assert links(nlp, kb, "Who won? His team did.") == []
    # the full names still link
    assert links(nlp, kb, "The Who played with His Name Is Alive.") == [
        ("The Who", "TheWho"), ("His Name Is Alive", "HisNameIsAlive")]


def test_short_aliases_are_skipped(nlp, kb) -> None:
    assert links(nlp, kb, "The UK voted.") == []


def test_capitalised_alias_needs_capitalised_text(nlp, kb) -> None:
    assert links(nlp, kb, "the bridge fell in chelsea") == []
    assert links(nlp, kb, "They crossed the Bridge.") == [("Bridge", "BridgeBand")]


def test_sentence_initial_common_word(nlp, kb) -> None:
    # "Music" starts a sentence and the doc also writes "music": a common word
    assert links(nlp, kb, "Music is great. I like music.") == []
    assert links(nlp, kb, "Music is great.") == [("Music", "MusicAlbum")]


def test_lowercase_alias_links_lowercase_text_but_not_names(nlp, kb) -> None:
    assert links(nlp, kb, "He ate an apple.") == [("apple", "AppleFruit")]
    # capitalised mid-sentence and never lowercase in the doc: a name, not the fruit
    assert links(nlp, kb, "Shares in Apple rose.") == [("Apple", "AppleInc")]


def test_word_inside_an_unknown_longer_name(nlp, kb) -> None:
    # "Chelsea Flower Show" and "Gordon Blair" are not in the KB: their words are not
    # the club / Tony Blair; a title before a name does not make a longer name
    assert links(nlp, kb, "They went to the Chelsea Flower Show.") == []
    assert links(nlp, kb, "He met Gordon Blair there.") == []
    assert links(nlp, kb, "He met Mr Blair there.") == [("Blair", "TonyBlair")]


def test_multiword_alias_capitalised_only_by_sentence_start(nlp, kb) -> None:
    assert links(nlp, kb, "The blues are back in town.") == []
    assert links(nlp, kb, "The Blues won again.") == [("The Blues", "ChelseaFC")]


def test_flat_ambiguous_alias_needs_context(nlp, kb) -> None:
    cfg = LinkerConfig(flat_prior=0.6)  # the four "England"s: best prior 0.54 -> flat
    assert links(nlp, kb, "England won the toss.", cfg) == []
    got = links(nlp, kb, "The England cricket team toured. England won the toss.", cfg)
    assert got == [("England cricket team", "EnglandCricket"), ("England", "EnglandCricket")]
    # default thresholds: the country wins on prior
    assert links(nlp, kb, "England won the toss.") == [("England", "England")]


def test_linker_is_memoised_per_kb_and_vocab(nlp, kb) -> None:
    a = get_linker(nlp.vocab, kb)
    assert get_linker(nlp.vocab, kb) is a
    assert KnowledgeFeaturizer(nlp.vocab, kb, None, labels=["x"], n_experts=2).linker is a
    other = spacy.blank("en")
    assert get_linker(other.vocab, kb) is not a
    assert isinstance(a, AliasLinker) and len(a) > 20


EX_FB = "http://rdf.freebase.com/ns/"


@pytest.mark.slow
def test_real_fb15k237_kb_on_news(repo_root: Path, tmp_path: Path, nlp) -> None:
    """The shipped KB (importing it takes ~5 s): the clubs it holds (it has no Arsenal
    F.C. and no Stamford Bridge), Blair, no "His" (an alias of L-histidine), no flood."""
    kb = import_rdf([repo_root / "knowledge" / "fb15k237.nt.gz"], tmp_path / "fbkb")
    linker = AliasLinker(nlp.vocab, kb)

    def labels(text: str) -> List[Tuple[str, str]]:
        doc = nlp(text)
        res = linker(doc)
        return [(doc[s:e].text, kb.labels[ent]) for s, e, ent in
                zip(res.starts.tolist(), res.ends.tolist(), res.entities.tolist())]

    got = labels("Chelsea beat Liverpool and Manchester United in the Premier League.")
    assert ("Chelsea", "Chelsea F.C.") in got and ("Manchester United", "Manchester United F.C.") in got
    assert labels("She bought a flat in Chelsea.") == [("Chelsea", "Chelsea")]  # the district, by prior
    text = ("His decision surprised Tony Blair. His chancellor Gordon Brown said his party, Labour, "
            "would win. England beat Wales and his England team-mates cheered. His, his, His.")
    found = labels(text)
    texts = [t for t, _ in found]
    assert "His" not in texts and "his" not in texts
    assert ("Tony Blair", "Tony Blair") in found and ("Gordon Brown", "Gordon Brown") in found
    assert ("Labour", "Labour Party") in found
    assert texts.count("England") <= 2 and len(found) <= 8
