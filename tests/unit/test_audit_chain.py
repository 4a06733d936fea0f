"""verify_chain detects every edit, deletion and swap, and names the first broken entry."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings, strategies as st

from market.audit import GENESIS, AuditEntry, entry_hash, verify_chain


def build(n: int) -> list[AuditEntry]:
    out: list[AuditEntry] = []
    prev = GENESIS
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(1, n + 1):
        fields = {
            "seq": i,
            "at": t0 + timedelta(seconds=i),
            "actor_user_id": i % 3,
            "actor_org_id": 1,
            "action": "a",
            "entity": "e",
            "entity_id": str(i),
            "before": None,
            "after": {"v": i},
        }
        h = entry_hash(prev, **fields)
        out.append(AuditEntry(**fields, prev_hash=prev, hash=h))
        prev = h
    return out


def test_intact_chain_verifies() -> None:
    assert verify_chain(build(30)).ok


@settings(max_examples=300, deadline=None)
@given(n=st.integers(2, 40), data=st.data())
def test_any_single_tampering_is_found_at_the_right_entry(n: int, data: st.DataObject) -> None:
    chain = build(n)
    kind = data.draw(st.sampled_from(["edit", "delete", "swap", "rehash_edit"]))
    i = data.draw(st.integers(0, n - 2))
    if kind == "edit":
        chain[i] = dataclasses.replace(chain[i], after={"v": -1})
        expected = chain[i].seq
    elif kind == "rehash_edit":  # attacker recomputes the edited entry's own hash
        e = dataclasses.replace(chain[i], actor_user_id=999)
        fields = {
            k: getattr(e, k)
            for k in (
                "seq",
                "at",
                "actor_user_id",
                "actor_org_id",
                "action",
                "entity",
                "entity_id",
                "before",
                "after",
            )
        }
        chain[i] = dataclasses.replace(e, hash=entry_hash(e.prev_hash, **fields))
        expected = chain[i + 1].seq
    elif kind == "delete":
        expected = chain[i + 1].seq
        del chain[i]
    else:
        chain[i], chain[i + 1] = chain[i + 1], chain[i]
        expected = chain[i].seq
    report = verify_chain(chain)
    assert not report.ok
    assert report.first_broken_seq == expected
