"""Directed recommendation (定向推荐): how well a published listing fits a buyer's interests.

Pure: a buyer's profile (kinds, classes, keywords) against a listing's features gives a
score and the reasons for it, so the buyer sees *why* a listing is recommended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from listings import textsearch

KIND_WEIGHT = 3
CLASS_WEIGHT = 2
KEYWORD_WEIGHT = 2


@dataclass(frozen=True, slots=True)
class Profile:
    kinds: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.kinds or self.classes or self.keywords)


@dataclass(frozen=True, slots=True)
class Features:
    kinds: tuple[str, ...]
    classes: tuple[str, ...]
    text: str


@dataclass(frozen=True, slots=True)
class Reason:
    code: str  # kind | class | keyword
    value: str


@dataclass(frozen=True, slots=True)
class Match:
    score: int
    reasons: tuple[Reason, ...]


def _class_hits(wanted: Sequence[str], have: Sequence[str]) -> list[str]:
    """A wanted class matches a listed class equal to it or under it (IPC ``H01M`` covers ``H01M 10/05``)."""
    norm = [h.replace(" ", "").upper() for h in have]
    return [w for w in wanted if any(h.startswith(w.replace(" ", "").upper()) for h in norm)]


def match(profile: Profile, listing: Features) -> Match:
    """Score ``listing`` for ``profile``; zero score means not recommended."""
    reasons: list[Reason] = [Reason("kind", k) for k in profile.kinds if k in listing.kinds]
    reasons += [Reason("class", c) for c in _class_hits(profile.classes, listing.classes)]
    reasons += [Reason("keyword", kw) for kw in profile.keywords if textsearch.matches(listing.text, kw)]
    weights = {"kind": KIND_WEIGHT, "class": CLASS_WEIGHT, "keyword": KEYWORD_WEIGHT}
    return Match(sum(weights[r.code] for r in reasons), tuple(reasons))
