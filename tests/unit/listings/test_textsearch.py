"""Unit tests of the Chinese/English search tokenizer and the tsquery builder."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from listings.textsearch import (
    index_terms,
    matches,
    normalise,
    query_terms,
    tsquery_text,
    tsvector_text,
)

# One quoted lexeme with optional prefix marker, AND-ed; inside quotes only '' and \\ escapes.
_OPERAND = r"'(?:[^'\\]|''|\\\\)+'(?::\*)?"
TSQUERY = re.compile(rf"^(?:{_OPERAND}(?: & {_OPERAND})*)?$")


def test_chinese_runs_become_bigrams() -> None:
    assert index_terms("发明专利") == ["发明", "明专", "专利"]
    assert index_terms("专利") == ["专利"]
    assert index_terms("锂") == ["锂"]


def test_a_two_character_word_matches_titles_containing_it() -> None:
    assert query_terms("专利") == ["专利"]
    assert matches("一种发明专利权的转让", "专利")
    assert matches("一种锂电池的制备方法", "锂电池")
    assert not matches("一种锂电池的制备方法", "电锂")
    assert not matches("商标许可", "专利")


def test_mixed_chinese_and_english() -> None:
    assert index_terms("5G通信基站 Antenna-Array设计") == [
        "5",
        "g",
        "通信",
        "信基",
        "基站",
        "antenna",
        "array",
        "设计",
    ]
    assert matches("Lithium Battery 锂电池专利", "lith 电池")
    assert not matches("Lithium Battery 锂电池专利", "lith 商标")


def test_full_width_and_case_are_normalised() -> None:
    assert normalise("ＡＢＣ　１２３") == "abc 123"
    assert index_terms("ＺＬ２０１８１０１２３４５６．７") == ["zl", "201810123456", "7"]
    assert matches("专利号 ZL201810123456.7", "ｚｌ２０１８１０")


def test_registration_numbers_keep_leading_zeros() -> None:
    assert index_terms("第00012345号") == ["第", "00012345", "号"]
    assert matches("注册号 00012345", "0001234")


def test_punctuation_and_symbols_separate_terms() -> None:
    assert index_terms("「专利」，商标；Copyright©2024!") == ["专利", "商标", "copyright", "2024"]
    assert index_terms("  ...  ") == []


def test_terms_are_deduplicated_in_order() -> None:
    assert index_terms("专利 专利 patent Patent") == ["专利", "patent"]


def test_tsvector_text_is_space_separated_terms() -> None:
    assert tsvector_text("锂电池 Battery") == "锂电 电池 battery"
    assert tsvector_text("") == ""


def test_tsquery_text_quotes_prefixes_and_ands_every_term() -> None:
    assert tsquery_text("专利 lith") == "'专利':* & 'lith':*"
    assert tsquery_text("锂电池") == "'锂电':* & '电池':*"
    assert tsquery_text("") == ""


@pytest.mark.parametrize(
    "hostile",
    [
        "a & b | !c :* ' \\",
        "'); DROP TABLE listings; --",
        "<-> <2> !(a|b) & :A*",
        "''''",
        "\\'\\'",
        "专利' | '商标",
        "&&&|||!!!",
    ],
)
def test_hostile_queries_produce_a_valid_fully_quoted_tsquery(hostile: str) -> None:
    query = tsquery_text(hostile)
    assert TSQUERY.match(query), query
    assert "|" not in query and "!" not in query and "<" not in query


def test_the_documented_hostile_example() -> None:
    assert tsquery_text("a & b | !c :* ' \\") == "'a':* & 'b':* & 'c':*"


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60))
def test_any_input_gives_a_valid_tsquery(text: str) -> None:
    query = tsquery_text(text)
    assert TSQUERY.match(query), query
    assert query.count(" & ") == max(len(query_terms(text)) - 1, 0)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from("专利商标锂电池abcXYZ019 ，-Ａ１"), max_size=30))
def test_every_text_matches_itself_and_each_of_its_pieces(text: str) -> None:
    if query_terms(text):
        assert matches(text, text)
    for term in index_terms(text):
        assert matches(text, term)
        assert " " not in term and term == normalise(term)
