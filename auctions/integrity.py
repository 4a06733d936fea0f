"""Integrity: a shill-bidding score per bidder per auction (pure; the figures come from SQL).

A shill bids to raise the price for the seller, not to buy. The literature on online auctions
(e.g. Trevathan & Read, "Detecting shill bidding in online English auctions") looks for bidders who

- bid **early** in the bidding window (the price is pushed before genuine bidders arrive);
- raise by **the minimum increment** again and again (nibbling the price up, never jumping);
- **never win** although they bid in many auctions (winning would mean paying);
- concentrate on **one seller's lots** (here: one consigning bank).

``shill_score`` turns those four ratios into a score from 0 to 100 and lists the signals that
contributed. Each signal has a weight (its maximum contribution) and is scaled down while the
sample is small: three bids or three auctions give it full confidence. The score is a pointer for an
operator's review, never a decision: it only ever shows on the operator monitor (DOMAIN rule 14:
identities behind paddles are for operators with audit access).
"""

from __future__ import annotations

from dataclasses import dataclass

WEIGHTS: dict[str, int] = {
    "early_bidding": 20,
    "minimum_increments": 25,
    "never_wins": 30,
    "seller_concentration": 25,
}
SUSPECT_THRESHOLD = 60  # score at or above which a bidder is listed as a suspect
EARLY_FRACTION = 4  # "early": within the first quarter of the bidding window
FULL_CONFIDENCE_BIDS = 3
FULL_CONFIDENCE_AUCTIONS = 3


@dataclass(frozen=True, slots=True)
class BidderActivity:
    """One bidder's bidding in one auction, and across every auction (cancelled bids left out).

    ``bids``: accepted bids in this auction; ``early_bids``: of which in the first quarter of the
    bidding window; ``minimum_increment_bids``: of which exactly one increment above the bid before.
    ``auctions_bid``: distinct auctions the bidder bid in; ``auctions_finished``: of which closed or
    failed; ``auctions_won``: of which the bidder won; ``auctions_same_seller``: auctions bid in that
    this auction's bank consigned (this one included).
    """

    bids: int
    early_bids: int
    minimum_increment_bids: int
    auctions_bid: int
    auctions_finished: int
    auctions_won: int
    auctions_same_seller: int


@dataclass(frozen=True, slots=True)
class Signal:
    code: str
    ratio: float  # the measured ratio, 0..1
    confidence: float  # 0..1: how much sample there is
    points: int  # contribution to the score, 0..weight
    weight: int


@dataclass(frozen=True, slots=True)
class Score:
    score: int  # 0..100
    signals: tuple[Signal, ...]  # the contributing signals, strongest first

    def is_suspect(self, threshold: int = SUSPECT_THRESHOLD) -> bool:
        return self.score >= threshold


def _ratio(part: int, whole: int) -> float:
    return 0.0 if whole <= 0 else max(0.0, min(1.0, part / whole))


def _confidence(sample: int, full: int) -> float:
    return max(0.0, min(1.0, sample / full))


def _signal(code: str, ratio: float, confidence: float) -> Signal:
    weight = WEIGHTS[code]
    return Signal(code, round(ratio, 4), round(confidence, 4), round(weight * ratio * confidence), weight)


def shill_score(a: BidderActivity) -> Score:
    """The score (0-100) and its contributing signals for one bidder in one auction."""
    candidates = (
        _signal("early_bidding", _ratio(a.early_bids, a.bids), _confidence(a.bids, FULL_CONFIDENCE_BIDS)),
        _signal(
            "minimum_increments",
            _ratio(a.minimum_increment_bids, a.bids),
            _confidence(a.bids, FULL_CONFIDENCE_BIDS),
        ),
        _signal(
            "never_wins",
            1.0 - _ratio(a.auctions_won, a.auctions_finished) if a.auctions_finished else 0.0,
            _confidence(a.auctions_finished, FULL_CONFIDENCE_AUCTIONS),
        ),
        # one auction is no concentration: confidence grows with every other auction bid in
        _signal(
            "seller_concentration",
            _ratio(a.auctions_same_seller, a.auctions_bid),
            _confidence(a.auctions_bid - 1, FULL_CONFIDENCE_AUCTIONS - 1),
        ),
    )
    signals = tuple(sorted((s for s in candidates if s.points > 0), key=lambda s: (-s.points, s.code)))
    return Score(min(100, sum(s.points for s in signals)), signals)
