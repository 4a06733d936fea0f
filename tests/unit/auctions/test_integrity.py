"""The shill-bidding score (pure): signals, weights, small samples, bounds."""

from __future__ import annotations

from hypothesis import given, strategies as st

from auctions.integrity import SUSPECT_THRESHOLD, WEIGHTS, BidderActivity, shill_score


def activity(**over: int) -> BidderActivity:
    values = {
        "bids": 0,
        "early_bids": 0,
        "minimum_increment_bids": 0,
        "auctions_bid": 1,
        "auctions_finished": 0,
        "auctions_won": 0,
        "auctions_same_seller": 1,
    }
    return BidderActivity(**(values | over))


def test_a_textbook_shill_scores_the_maximum() -> None:
    shill = activity(
        bids=6,
        early_bids=6,
        minimum_increment_bids=6,
        auctions_bid=5,
        auctions_finished=4,
        auctions_same_seller=5,
    )
    score = shill_score(shill)
    assert score.score == 100 and score.is_suspect()
    assert [s.code for s in score.signals] == [
        "never_wins",
        "minimum_increments",
        "seller_concentration",
        "early_bidding",
    ]
    assert all(s.points == s.weight == WEIGHTS[s.code] for s in score.signals)


def test_an_ordinary_bidder_is_no_suspect() -> None:
    buyer = activity(
        bids=2,
        early_bids=0,
        minimum_increment_bids=1,
        auctions_bid=6,
        auctions_finished=5,
        auctions_won=3,
        auctions_same_seller=1,
    )
    score = shill_score(buyer)
    assert score.score < SUSPECT_THRESHOLD and not score.is_suspect()


def test_small_samples_weigh_less() -> None:
    one_bid = shill_score(activity(bids=1, early_bids=1, minimum_increment_bids=1))
    three = shill_score(activity(bids=3, early_bids=3, minimum_increment_bids=3))
    assert one_bid.score < three.score
    assert {s.code for s in one_bid.signals} == {
        "early_bidding",
        "minimum_increments",
    }  # one auction: no history
    first_auction = shill_score(activity(auctions_bid=1, auctions_same_seller=1))
    assert first_auction.score == 0 and first_auction.signals == ()


def test_winning_clears_the_never_wins_signal() -> None:
    winner = shill_score(
        activity(auctions_bid=4, auctions_finished=4, auctions_won=4, auctions_same_seller=1)
    )
    assert "never_wins" not in {s.code for s in winner.signals}


counts = st.integers(0, 50)


@given(st.tuples(counts, counts, counts, counts, counts, counts, counts))
def test_the_score_is_bounded_and_the_signals_add_up(values: tuple[int, ...]) -> None:
    bids, early, minimum, bid_in, finished, won, same = values
    score = shill_score(
        BidderActivity(
            bids=bids,
            early_bids=min(early, bids),
            minimum_increment_bids=min(minimum, bids),
            auctions_bid=max(bid_in, 1),
            auctions_finished=min(finished, max(bid_in, 1)),
            auctions_won=min(won, finished),
            auctions_same_seller=min(same, max(bid_in, 1)),
        )
    )
    assert 0 <= score.score <= 100
    assert score.score == sum(s.points for s in score.signals)
    assert all(0 < s.points <= s.weight for s in score.signals)
