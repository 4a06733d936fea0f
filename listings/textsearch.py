"""Full-text search terms for Chinese and English titles, without pg_trgm or zhparser.

PostgreSQL's ``simple`` configuration splits on spaces and punctuation, which works for English
but treats a whole run of Chinese characters as one word, so "专利" would never match
"发明专利权". We therefore tokenise in Python and hand PostgreSQL ready-made terms:

- the text is normalised (NFKC folds full-width letters, digits and spaces to half-width; then
  case-folded);
- runs of letters become word terms and runs of digits become number terms, so registration
  numbers like ``ZL201810123456.7`` give ``zl``, ``201810123456`` and ``7`` (leading zeros kept);
- each run of CJK characters (Han, kana, Hangul) becomes its overlapping character bigrams
  ("发明专利" -> 发明, 明专, 专利), or the character itself for a one-character run.

The same tokenizer serves documents (``index_terms``) and queries (``query_terms``), so a query
matches a text when every query term occurs in it. ``tsvector_text`` / ``tsquery_text`` produce
strings for ``to_tsvector('simple', ...)`` and ``to_tsquery('simple', ...)``; every query term is
quoted and AND-ed, so no user input can inject tsquery operators.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator

_CJK_CLASS = (
    "\u2e80-\u2fdf"  # radicals
    "\u3005-\u3007"  # 々 〆 〇
    "\u3021-\u3029"  # Hangzhou numerals
    "\u3040-\u30ff"  # hiragana, katakana
    "\u3100-\u312f"  # bopomofo
    "\u31a0-\u31bf"
    "\u31f0-\u31ff"
    "\u3400-\u4dbf"  # extension A
    "\u4e00-\u9fff"  # unified ideographs
    "\uac00-\ud7af"  # Hangul syllables
    "\uf900-\ufaff"  # compatibility ideographs
    "\U00020000-\U0003134f"  # extensions B-G
)
_TOKEN = re.compile(
    rf"(?P<cjk>[{_CJK_CLASS}]+)"
    rf"|(?P<word>(?:(?![{_CJK_CLASS}])[^\W\d_])+)"
    r"|(?P<digits>\d+)"
)


def normalise(text: str) -> str:
    """NFKC-normalise (full-width to half-width) and case-fold."""
    return unicodedata.normalize("NFKC", text).casefold()


def _bigrams(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def _raw_terms(text: str) -> Iterator[str]:
    for match in _TOKEN.finditer(normalise(text)):
        if match.lastgroup == "cjk":
            yield from _bigrams(match.group())
        else:
            yield match.group()


def _unique(terms: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(terms))


def index_terms(text: str) -> list[str]:
    """The distinct search terms of a document, in order of first appearance.

    Letter runs and digit runs as lower-case words; CJK runs as character bigrams (a lone CJK
    character as itself). Example: ``"发明专利 Lithium-ion 电池 ZL2018"`` ->
    ``["发明", "明专", "专利", "lithium", "ion", "电池", "zl", "2018"]``.
    """
    return _unique(_raw_terms(text))


def query_terms(q: str) -> list[str]:
    """The distinct terms of a search query, tokenised exactly like ``index_terms``."""
    return _unique(_raw_terms(q))


def matches(text: str, q: str) -> bool:
    """Whether ``text`` matches ``q`` the way ``tsquery_text`` does in PostgreSQL.

    Every query term must be a prefix of some document term. A query without terms matches
    nothing (as an empty tsquery matches nothing).
    """
    wanted = query_terms(q)
    have = index_terms(text)
    return bool(wanted) and all(any(term.startswith(w) for term in have) for w in wanted)


def tsvector_text(text: str) -> str:
    """Space-separated terms, for ``to_tsvector('simple', :text)``.

    Terms contain only letters or digits, so PostgreSQL's parser keeps each as one token.
    """
    return " ".join(index_terms(text))


def _quote(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("'", "''")
    return f"'{escaped}'"


def tsquery_text(q: str) -> str:
    """A safe ``to_tsquery('simple', :q)`` string: every term quoted, prefix-matched, AND-ed.

    ``"专利 lith"`` -> ``"'专利':* & 'lith':*"``. Prefix matching lets a partial English word or
    registration number match; for CJK bigrams it changes nothing (document CJK terms are at
    most two characters), and a single CJK character matches the bigrams it starts. Returns ""
    for a query without terms: callers should skip the search condition then.
    """
    return " & ".join(f"{_quote(term)}:*" for term in query_terms(q))
