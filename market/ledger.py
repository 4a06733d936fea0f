"""Ledger: immutable postings and the invariants every journal must keep.

A posting moves ``amount_fen`` (> 0) out of ``debit`` into ``credit``; every
account's balance is Σ credits − Σ debits, so the balances of a journal always
sum to zero. Account names are ``kind:id[:sub]`` (SETTLEMENT.md §3). Only the
outside world (``buyer:*``, ``poolfund:*``) may go below zero.

``check_invariants`` and ``check_balances`` return every problem they find as
values (beancount style), because a reconcile report wants all of them; code
that finds a problem on its own write path raises ``LedgerInvariantBroken`` —
a bug, never a user error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from market.money import require_fen

NEGATIVE_ALLOWED_KINDS = ("buyer", "poolfund")


class LedgerInvariantBroken(AssertionError):
    """The engine was about to write a journal that breaks an invariant (a bug, HTTP 500)."""

    def __init__(self, problems: Iterable[LedgerProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{p.code}: {p.detail}" for p in self.problems))


@dataclass(frozen=True, slots=True)
class Posting:
    """``amount_fen`` leaves ``debit`` and arrives in ``credit``; ``memo`` starts with ``[event id]``.

    Raises:
        NotIntegerFen: if ``amount_fen`` is not a genuine int.
        LedgerInvariantBroken: if the amount is not positive or ``debit == credit``.
    """

    debit: str
    credit: str
    amount_fen: int
    memo: str

    def __post_init__(self) -> None:
        require_fen(self.amount_fen)
        problems = posting_problems(self)
        if problems:
            raise LedgerInvariantBroken(problems)

    def as_dict(self) -> dict[str, object]:
        """Return the posting in the JSON shape of the settlement vectors."""
        return {"debit": self.debit, "credit": self.credit, "amount_fen": self.amount_fen, "memo": self.memo}

    def mirrored(self, memo: str) -> Posting:
        """Return the correcting posting: debit and credit swapped, same amount, ``memo``."""
        return Posting(self.credit, self.debit, self.amount_fen, memo)


@dataclass(frozen=True, slots=True)
class LedgerProblem:
    """One broken invariant: a stable ``code`` and a human ``detail``."""

    code: str
    detail: str


def posting_problems(posting: Posting) -> list[LedgerProblem]:
    """Return the problems of one posting (non-positive amount, same account on both sides)."""
    problems = []
    if posting.amount_fen <= 0:
        problems.append(LedgerProblem("non_positive_posting", f"{posting.memo}: {posting.amount_fen}"))
    if posting.debit == posting.credit or not posting.debit or not posting.credit:
        problems.append(LedgerProblem("same_account", f"{posting.memo}: {posting.debit} -> {posting.credit}"))
    return problems


def account_kind(name: str) -> str:
    """Return the ``kind`` part of an account name ``kind:id[:sub]``."""
    return name.split(":", 1)[0]


def account_may_go_negative(name: str) -> bool:
    """Return whether the account belongs to the outside world (``buyer:*``, ``poolfund:*``)."""
    return account_kind(name) in NEGATIVE_ALLOWED_KINDS


def balances(postings: Iterable[Posting]) -> dict[str, int]:
    """Return every touched account's balance (credits − debits), in first-touched order."""
    result: dict[str, int] = {}
    apply_postings(result, postings)
    return result


def apply_postings(into: dict[str, int], postings: Iterable[Posting]) -> None:
    """Add the effect of ``postings`` to the balances ``into``, in place."""
    for posting in postings:
        into[posting.debit] = into.get(posting.debit, 0) - posting.amount_fen
        into[posting.credit] = into.get(posting.credit, 0) + posting.amount_fen


def check_balances(
    current: Mapping[str, int],
    *,
    limits: Mapping[str, int] | None = None,
    expected: Mapping[str, int] | None = None,
) -> list[LedgerProblem]:
    """Return every problem with a set of balances.

    ``limits`` caps accounts (claim buckets: their opening outstanding);
    ``expected`` pins accounts to a register figure (unresolved holds, forfeit
    reserves, escrow awaiting a filing). Escrow accounts not in ``expected`` must be 0.
    Codes: ``unbalanced``, ``negative_balance``, ``over_limit``, ``register_mismatch``,
    ``escrow_not_zero``.
    """
    problems = _sum_problems(current) + _negative_problems(current)
    problems += _limit_problems(current, limits or {})
    problems += _register_problems(current, expected or {})
    return problems


def check_invariants(
    postings: Iterable[Posting],
    *,
    limits: Mapping[str, int] | None = None,
    expected: Mapping[str, int] | None = None,
    stored: Mapping[str, int] | None = None,
) -> list[LedgerProblem]:
    """Replay ``postings`` and return every broken invariant (SETTLEMENT.md §5) as values.

    Besides ``check_balances``' codes: ``non_positive_posting``/``same_account`` for
    a bad posting and ``balance_drift`` where a ``stored`` balance disagrees with the replay.
    """
    journal = list(postings)
    problems = [problem for posting in journal for problem in posting_problems(posting)]
    replayed = balances(journal)
    if stored is not None:
        problems += drift_problems(replayed, stored)
    return problems + check_balances(replayed, limits=limits, expected=expected)


def _sum_problems(current: Mapping[str, int]) -> list[LedgerProblem]:
    total = sum(current.values())
    return [LedgerProblem("unbalanced", f"balances sum to {total}, not 0")] if total else []


def _negative_problems(current: Mapping[str, int]) -> list[LedgerProblem]:
    return [
        LedgerProblem("negative_balance", f"{name} = {amount}")
        for name, amount in current.items()
        if amount < 0 and not account_may_go_negative(name)
    ]


def _limit_problems(current: Mapping[str, int], limits: Mapping[str, int]) -> list[LedgerProblem]:
    return [
        LedgerProblem("over_limit", f"{name} = {current.get(name, 0)} above its limit {limit}")
        for name, limit in limits.items()
        if current.get(name, 0) > limit
    ]


def _register_problems(current: Mapping[str, int], expected: Mapping[str, int]) -> list[LedgerProblem]:
    problems = [
        LedgerProblem("register_mismatch", f"{name} = {current.get(name, 0)}, register says {amount}")
        for name, amount in expected.items()
        if current.get(name, 0) != amount
    ]
    problems += [
        LedgerProblem("escrow_not_zero", f"{name} = {amount}")
        for name, amount in current.items()
        if account_kind(name) == "escrow" and amount and name not in expected
    ]
    return problems


def drift_problems(replayed: Mapping[str, int], stored: Mapping[str, int]) -> list[LedgerProblem]:
    """Return a ``balance_drift`` problem for every account whose stored balance is not the replay's."""
    names = list(replayed) + [name for name in stored if name not in replayed]
    return [
        LedgerProblem(
            "balance_drift", f"{name}: stored {stored.get(name, 0)}, replay {replayed.get(name, 0)}"
        )
        for name in names
        if stored.get(name, 0) != replayed.get(name, 0)
    ]
