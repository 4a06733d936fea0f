"""Settlement: the proceeds of a disposal of pledged IP, back to the banks' claims.

A ``Book`` holds one disposal: its claims (costs / interest / principal
buckets), the pledged assets that secure them by rank, the lots those assets
are sold or licensed in, and any risk pools. Events (``hold``, ``close``,
``fail``, ``pay``, ``default``, ``cost``, ``receipt``, ``finalize``,
``reverse``) are applied one at a time; each produces an ordered list of
postings that is applied all or none (SETTLEMENT.md §4).

Money received for a lot goes through the waterfall (§8): lot costs, platform
fee, bundle split by appraisal, claims by rank (equal rank pro rata by total
outstanding), buckets in the claim's order, surplus to the asset's pledgor.
Forfeited deposits (悔拍, §10) pay costs first, then the re-auction shortfall,
then the claim. ``finalize`` records shortfalls and pays pool compensation (§11).

Everything here is pure: the Book's state is a fold of its events, so a store
can persist each event with its postings and rebuild the Book by replaying
the events (``Book.replay``). Idempotency is by event id (§6): the same id
with the same canonical content returns the original result; with different
content it is refused (``id_reused``); a refused event leaves no trace.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from market.errors import (
    BidderBarred,  # shared conditions, re-exported here
    Conflict,
    IdempotencyKeyReused,
    MarketError,
    RuleViolation,
    ValidationFailed,
)
from market.ledger import (
    LedgerInvariantBroken,
    LedgerProblem,
    Posting,
    apply_postings,
    check_balances,
    drift_problems,
)
from market.money import (
    DEFAULT_SLICES,
    CommissionSlice,
    basis_points_fen,
    buyer_commission_fen,
    require_fen,
    split_pro_rata,
)

BUCKETS: tuple[str, ...] = ("costs", "interest", "principal")
STATUTORY_ORDER = BUCKETS  # CC 561: costs of realisation, interest, principal
SALE, LICENCE = "sale", "licence"

JsonMap = Mapping[str, object]


# --------------------------------------------------------------------------- errors


#: Same key, different content (§6); one class and one code for the whole service.
IdReused = IdempotencyKeyReused


class HoldExists(Conflict):
    code = "hold_exists"
    title = "The bidder already holds an unresolved deposit on this lot"


class WrongAmount(RuleViolation):
    code = "wrong_amount"
    title = "The amount is not the balance due"


class NonPositiveAmount(RuleViolation):
    code = "non_positive_amount"
    title = "The amount must be more than 0 fen"


class Finalized(Conflict):
    code = "finalized"
    title = "The disposal is finalized"


class WrongLotState(Conflict):
    code = "wrong_lot_state"
    title = "The lot is not in a state that allows this event"


class WrongLotMode(RuleViolation):
    code = "wrong_lot_mode"
    title = "The event does not fit the lot's mode (sale or licence)"


class UnknownLot(RuleViolation):
    code = "unknown_lot"
    title = "No such lot in this disposal"


class UnknownEvent(RuleViolation):
    code = "unknown_event"
    title = "No such event in this disposal"


class NotReversible(RuleViolation):
    code = "not_reversible"
    title = "This event cannot be reversed"


class AlreadyReversed(Conflict):
    code = "already_reversed"
    title = "The event has already been reversed"


class ReverseBlocked(Conflict):
    code = "reverse_blocked"
    title = "A later event cannot be replayed without the reversed one"


# --------------------------------------------------------------------------- the disposal


@dataclass(frozen=True, slots=True)
class Claim:
    """A defaulted loan: opening outstanding per bucket and the order buckets are paid in."""

    id: str
    bank: str
    opening: Mapping[str, int]
    order: tuple[str, ...] = STATUTORY_ORDER
    pool: str | None = None
    debtor: str | None = None

    @property
    def accounts(self) -> dict[str, str]:
        """Return bucket -> receivable account name."""
        return {bucket: f"claim:{self.id}:{bucket}" for bucket in BUCKETS}


@dataclass(frozen=True, slots=True)
class Pledge:
    """An asset secures ``claim`` at ``rank`` (1 = first registered; equal ranks share pro rata)."""

    claim: str
    rank: int


@dataclass(frozen=True, slots=True)
class Asset:
    """A pledged IP right, its pledgor (who takes any surplus) and the claims it secures."""

    id: str
    pledgor: str
    appraisal_fen: int
    secures: tuple[Pledge, ...]


@dataclass(frozen=True, slots=True)
class Lot:
    """What is sold or licensed as one unit: one asset or a bundle, with its costs and fee rate."""

    id: str
    assets: tuple[str, ...]
    disposal_costs_fen: int = 0
    platform_fee_bp: int = 0
    buyer_commission: bool = False
    mode: str = SALE
    slices: tuple[CommissionSlice, ...] = DEFAULT_SLICES


@dataclass(frozen=True, slots=True)
class Pool:
    """A risk-compensation pool: share of principal loss, per-loan cap, optional per-enterprise cap."""

    id: str
    balance_fen: int
    share_bp: int
    per_loan_cap_fen: int | None = None
    per_enterprise_cap_fen: int | None = None


@dataclass(frozen=True, slots=True)
class Disposal:
    """The fixed facts of one disposal (SETTLEMENT.md §12 input, without its events)."""

    id: str
    claims: Mapping[str, Claim]
    assets: Mapping[str, Asset]
    lots: Mapping[str, Lot]
    pools: Mapping[str, Pool] = field(default_factory=dict)


# --------------------------------------------------------------------------- input parsing


def _invalid(where: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{where}: {message}", errors=[{"loc": where, "msg": message}])


def _map(value: object, where: str) -> JsonMap:
    if not isinstance(value, Mapping):
        raise _invalid(where, "must be an object")
    return value


def _get(data: JsonMap, key: str, where: str) -> object:
    if key not in data:
        raise _invalid(f"{where}.{key}", "is required")
    return data[key]


def _text(data: JsonMap, key: str, where: str) -> str:
    value = _get(data, key, where)
    if not isinstance(value, str) or not value:
        raise _invalid(f"{where}.{key}", "must be a non-empty string")
    return value


def _name(data: JsonMap, key: str, where: str) -> str:
    """A string that becomes part of an account name, so it may not contain ':'."""
    value = _text(data, key, where)
    return _check_name(value, f"{where}.{key}")


def _check_name(value: str, where: str) -> str:
    if not value or ":" in value:
        raise _invalid(where, f"{value!r} must be non-empty and contain no ':'")
    return value


def _opt_name(data: JsonMap, key: str, where: str) -> str | None:
    return None if data.get(key) is None else _name(data, key, where)


def _fen(data: JsonMap, key: str, where: str, default: int | None = None) -> int:
    """A non-negative integer-fen field (``not_integer_fen`` for a float, bool, string ...)."""
    if default is not None and key not in data:
        return default
    value = require_fen(_get(data, key, where))
    if value < 0:
        raise _invalid(f"{where}.{key}", "must not be negative")
    return value


def _opt_fen(data: JsonMap, key: str, where: str) -> int | None:
    return None if data.get(key) is None else _fen(data, key, where)


def _bp(data: JsonMap, key: str, where: str) -> int:
    value = _fen(data, key, where, default=0)
    if value > 10_000:
        raise _invalid(f"{where}.{key}", "must be at most 10000 bp")
    return value


def _list(value: object, where: str) -> list[object]:
    if not isinstance(value, list | tuple):
        raise _invalid(where, "must be a list")
    return list(value)


def _items(data: JsonMap, key: str, where: str) -> Iterator[tuple[str, JsonMap]]:
    section = _map(data.get(key, {}), f"{where}.{key}")
    for item_id, item in section.items():
        yield _check_name(str(item_id), f"{key}"), _map(item, f"{key}.{item_id}")


def parse_disposal(data: JsonMap) -> Disposal:
    """Build a ``Disposal`` from the §12 input shape (the ``events`` key is ignored).

    Raises:
        ValidationFailed: on a missing or malformed field or a dangling reference.
        NotIntegerFen: on an amount that is not integer fen.
    """
    pools = {pid: _parse_pool(pid, item) for pid, item in _items(data, "pools", "input")}
    claims = {cid: _parse_claim(cid, item, pools) for cid, item in _items(data, "claims", "input")}
    assets = {aid: _parse_asset(aid, item, claims) for aid, item in _items(data, "assets", "input")}
    lots = {lid: _parse_lot(lid, item, assets) for lid, item in _items(data, "lots", "input")}
    return Disposal(str(data.get("disposal_id", "")), claims, assets, lots, pools)


def _parse_pool(pool_id: str, data: JsonMap) -> Pool:
    where = f"pools.{pool_id}"
    return Pool(
        pool_id,
        balance_fen=_fen(data, "balance_fen", where),
        share_bp=_bp(data, "share_bp", where),
        per_loan_cap_fen=_opt_fen(data, "per_loan_cap_fen", where),
        per_enterprise_cap_fen=_opt_fen(data, "per_enterprise_cap_fen", where),
    )


def _parse_claim(claim_id: str, data: JsonMap, pools: Mapping[str, Pool]) -> Claim:
    where = f"claims.{claim_id}"
    opening = {
        "costs": _fen(data, "costs_fen", where, default=0),
        "interest": _fen(data, "interest_fen", where, default=0)
        + _fen(data, "default_interest_fen", where, default=0),
        "principal": _fen(data, "principal_fen", where),
    }
    pool = _opt_name(data, "pool", where)
    if pool is not None and pool not in pools:
        raise _invalid(f"{where}.pool", f"unknown pool {pool!r}")
    order = _parse_order(data.get("order"), f"{where}.order")
    return Claim(claim_id, _text(data, "bank", where), opening, order, pool, _opt_name(data, "debtor", where))


def _parse_order(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return STATUTORY_ORDER
    order = tuple(str(bucket) for bucket in _list(value, where))
    if sorted(order) != sorted(BUCKETS):
        raise _invalid(where, f"must list each of {', '.join(BUCKETS)} once")
    return order


def _parse_asset(asset_id: str, data: JsonMap, claims: Mapping[str, Claim]) -> Asset:
    where = f"assets.{asset_id}"
    secures = tuple(
        _parse_pledge(_map(item, f"{where}.secures"), claims, f"{where}.secures")
        for item in _list(_get(data, "secures", where), f"{where}.secures")
    )
    if len({pledge.claim for pledge in secures}) != len(secures):
        raise _invalid(f"{where}.secures", "lists a claim twice")
    return Asset(asset_id, _name(data, "pledgor", where), _fen(data, "appraisal_fen", where), secures)


def _parse_pledge(data: JsonMap, claims: Mapping[str, Claim], where: str) -> Pledge:
    claim = _text(data, "claim", where)
    rank = _get(data, "rank", where)
    if claim not in claims:
        raise _invalid(where, f"unknown claim {claim!r}")
    if type(rank) is not int or rank < 1:
        raise _invalid(f"{where}.rank", "must be an integer >= 1")
    return Pledge(claim, rank)


def _parse_lot(lot_id: str, data: JsonMap, assets: Mapping[str, Asset]) -> Lot:
    where = f"lots.{lot_id}"
    members = tuple(str(a) for a in _list(_get(data, "assets", where), f"{where}.assets"))
    _check_lot_assets(members, assets, where)
    commission = data.get("buyer_commission", False)
    if not isinstance(commission, bool):
        raise _invalid(f"{where}.buyer_commission", "must be true or false")
    return Lot(
        lot_id,
        members,
        disposal_costs_fen=_fen(data, "disposal_costs_fen", where, default=0),
        platform_fee_bp=_bp(data, "platform_fee_bp", where),
        buyer_commission=commission,
        mode=_parse_mode(data.get("mode", SALE), f"{where}.mode"),
        slices=_parse_slices(data.get("commission_slices"), f"{where}.commission_slices"),
    )


def _check_lot_assets(members: Sequence[str], assets: Mapping[str, Asset], where: str) -> None:
    if not members or len(set(members)) != len(members):
        raise _invalid(f"{where}.assets", "must list at least one asset, each once")
    unknown = [a for a in members if a not in assets]
    if unknown:
        raise _invalid(f"{where}.assets", f"unknown assets {unknown}")
    if len(members) > 1 and not sum(assets[a].appraisal_fen for a in members):
        raise _invalid(f"{where}.assets", "a bundle needs a positive total appraisal to be split")


def _parse_mode(value: object, where: str) -> str:
    modes = {"sale": SALE, "licence": LICENCE, "license": LICENCE}
    if not isinstance(value, str) or value not in modes:
        raise _invalid(where, "must be 'sale' or 'licence'")
    return modes[value]


def _parse_slices(value: object, where: str) -> tuple[CommissionSlice, ...]:
    if value is None:
        return DEFAULT_SLICES
    slices = []
    for item in _list(value, where):
        row = _map(item, where)
        slices.append(CommissionSlice(_opt_fen(row, "upto_fen", where), _bp(row, "rate_bp", where)))
    try:
        buyer_commission_fen(0, slices)
    except ValueError as exc:
        raise _invalid(where, str(exc)) from exc
    return tuple(slices)


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Hold:
    """A bidder's deposit, held pending (two-phase transfer)."""

    id: str
    lot: str
    bidder: str
    amount_fen: int


@dataclass(frozen=True, slots=True)
class Close:
    """The round ends with a winner at ``price_fen``; other holds are voided."""

    id: str
    lot: str
    winner: str
    price_fen: int


@dataclass(frozen=True, slots=True)
class Fail:
    """The round fails (流拍); every hold is voided and the lot stays listed."""

    id: str
    lot: str


@dataclass(frozen=True, slots=True)
class Pay:
    """The winner pays the balance due; the proceeds run through the waterfall."""

    id: str
    lot: str
    amount_fen: int


@dataclass(frozen=True, slots=True)
class Default:
    """The winner misses the balance deadline (悔拍): deposit forfeited, bidder barred, lot relisted."""

    id: str
    lot: str


@dataclass(frozen=True, slots=True)
class Cost:
    """A further disposal cost of the lot (e.g. re-auction notice)."""

    id: str
    lot: str
    amount_fen: int
    memo: str


@dataclass(frozen=True, slots=True)
class Receipt:
    """Licence money (upfront, instalment, royalty); each receipt is its own waterfall run."""

    id: str
    lot: str
    payer: str
    amount_fen: int
    memo: str


@dataclass(frozen=True, slots=True)
class Finalize:
    """Close the disposal: void holds, apply leftover forfeits, record shortfalls, pay pools."""

    id: str


@dataclass(frozen=True, slots=True)
class Reverse:
    """Mirror the postings of ``target`` and replay what depended on it (§6)."""

    id: str
    target: str


Event = Hold | Close | Fail | Pay | Default | Cost | Receipt | Finalize | Reverse


def event_id(data: JsonMap) -> str:
    """Return the event's idempotency key.

    Raises:
        ValidationFailed: if ``id`` is missing or not a non-empty string.
    """
    return _text(_map(data, "event"), "id", "event")


def canonical_json(data: JsonMap) -> str:
    """Return the canonical JSON text of an event: sorted keys, no whitespace (for idempotency)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr)


def parse_event(data: JsonMap) -> Event:
    """Build a typed event from its JSON shape (§12).

    Raises:
        ValidationFailed: on an unknown type or a missing/malformed field.
        NotIntegerFen: on an amount that is not integer fen.
    """
    kind = _get(data, "type", "event")
    parser = _EVENT_PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise _invalid("event.type", f"unknown event type {kind!r}")
    return parser(data, event_id(data))


def _amount(data: JsonMap) -> int:
    return require_fen(_get(data, "amount_fen", "event"))


def _hold_of(data: JsonMap, eid: str) -> Event:
    return Hold(eid, _text(data, "lot", "event"), _name(data, "bidder", "event"), _amount(data))


def _close_of(data: JsonMap, eid: str) -> Event:
    price = require_fen(_get(data, "price_fen", "event"))
    return Close(eid, _text(data, "lot", "event"), _name(data, "winner", "event"), price)


def _cost_of(data: JsonMap, eid: str) -> Event:
    return Cost(eid, _text(data, "lot", "event"), _amount(data), str(data.get("memo") or "disposal costs"))


def _receipt_of(data: JsonMap, eid: str) -> Event:
    memo = str(data.get("memo") or "receipt")
    return Receipt(eid, _text(data, "lot", "event"), _name(data, "payer", "event"), _amount(data), memo)


_EVENT_PARSERS: dict[str, Callable[[JsonMap, str], Event]] = {
    "hold": _hold_of,
    "close": _close_of,
    "fail": lambda data, eid: Fail(eid, _text(data, "lot", "event")),
    "pay": lambda data, eid: Pay(eid, _text(data, "lot", "event"), _amount(data)),
    "default": lambda data, eid: Default(eid, _text(data, "lot", "event")),
    "cost": _cost_of,
    "receipt": _receipt_of,
    "finalize": lambda data, eid: Finalize(eid),
    "reverse": lambda data, eid: Reverse(eid, _text(data, "target", "event")),
}


# --------------------------------------------------------------------------- account names


def buyer_account(party: str) -> str:
    """A buyer's or licensee's own money (may go negative)."""
    return f"buyer:{party}"


def hold_account(lot: str, bidder: str) -> str:
    """A bidder's pending deposit on a lot."""
    return f"hold:{lot}:{bidder}"


def escrow_account(lot: str) -> str:
    """Money received for a lot, not yet distributed (0 after every event)."""
    return f"escrow:{lot}"


def forfeit_account(lot: str) -> str:
    """Forfeited deposits of a lot not yet applied."""
    return f"forfeit:{lot}"


def costs_account(lot: str) -> str:
    """The lot's disposal costs payable."""
    return f"costs:{lot}"


def claim_account(claim: str, bucket: str) -> str:
    """A claim bucket's receivable: its balance is what the bank recovers for that bucket."""
    return f"claim:{claim}:{bucket}"


PLATFORM_FEE = "fee:platform"
COMMISSION = "fee:commission"


# --------------------------------------------------------------------------- the waterfall (pure)


@dataclass
class _Run:
    """One settlement run's scratch pad: postings so far and what each claim still has outstanding."""

    tag: str
    escrow: str
    outstanding: dict[str, dict[str, int]]
    postings: list[Posting] = field(default_factory=list)

    def post(self, credit: str, amount_fen: int, text: str) -> int:
        if amount_fen:
            self.postings.append(Posting(self.escrow, credit, amount_fen, f"{self.tag} {text}"))
        return amount_fen

    def total(self, claim: str) -> int:
        return sum(self.outstanding[claim].values())


def waterfall(
    gross_fen: int,
    fee_base_fen: int,
    lot: Lot,
    *,
    disposal: Disposal,
    outstanding: Mapping[str, Mapping[str, int]],
    unpaid_costs_fen: int,
    event_id: str,
) -> list[Posting]:
    """Distribute ``gross_fen`` sitting in the lot's escrow: steps W1-W6 of SETTLEMENT.md §8.

    W1 unpaid lot costs, W2 platform fee ⌊fee_base × bp / 10 000⌋, W3 split by
    appraisal over the lot's assets, W4 claims by rank (equal rank pro rata by
    total outstanding), W5 buckets in each claim's order, W6 surplus to the
    asset's pledgor. ``outstanding`` is claim -> bucket -> fen and is not modified.
    Returns the postings out of ``escrow:{lot}`` (none of 0 fen), summing to ``gross_fen``.

    Raises:
        ValueError: if ``gross_fen`` is negative.
    """
    if gross_fen < 0:
        raise ValueError("gross must not be negative")
    run = _Run(f"[{event_id}]", escrow_account(lot.id), {c: dict(b) for c, b in outstanding.items()})
    left = gross_fen - run.post(costs_account(lot.id), min(gross_fen, unpaid_costs_fen), "disposal costs")
    fee = min(left, basis_points_fen(fee_base_fen, lot.platform_fee_bp))
    left -= run.post(PLATFORM_FEE, fee, f"platform fee {lot.platform_fee_bp} bp")
    assets = [disposal.assets[a] for a in lot.assets]
    for asset, share in zip(assets, asset_shares(left, assets), strict=True):
        _distribute_asset(run, asset, share, disposal.claims)
    return run.postings


def asset_shares(amount_fen: int, assets: Sequence[Asset]) -> list[int]:
    """W3: split ``amount_fen`` over a bundle by appraisal (largest remainder, lot order)."""
    if len(assets) == 1:
        return [amount_fen]
    return split_pro_rata(amount_fen, [asset.appraisal_fen for asset in assets])


def ranks(asset: Asset) -> list[tuple[int, list[str]]]:
    """Return ``(rank, claims)`` ascending by rank, claims in the asset's listed order."""
    grouped: dict[int, list[str]] = {}
    for pledge in asset.secures:
        grouped.setdefault(pledge.rank, []).append(pledge.claim)
    return sorted(grouped.items())


def rank_allocation(available_fen: int, outstanding_totals: Sequence[int]) -> list[int]:
    """W4 within one rank: everyone in full if it covers them, else pro rata by total outstanding."""
    if available_fen >= sum(outstanding_totals):
        return list(outstanding_totals)
    return split_pro_rata(available_fen, outstanding_totals)


def _distribute_asset(run: _Run, asset: Asset, share: int, claims: Mapping[str, Claim]) -> None:
    left = share
    for rank, members in ranks(asset):
        amounts = rank_allocation(left, [run.total(claim) for claim in members])
        for claim, amount in zip(members, amounts, strict=True):
            _pay_claim(run, claims[claim], amount, f"({asset.id} rank {rank})")
        left -= sum(amounts)
    run.post(f"pledgor:{asset.pledgor}", left, f"surplus of {asset.id} to pledgor {asset.pledgor}")


def _pay_claim(run: _Run, claim: Claim, amount_fen: int, source: str) -> None:
    """W5: apply ``amount_fen`` to the claim's buckets in its order, never beyond outstanding."""
    left = amount_fen
    buckets = run.outstanding[claim.id]
    for bucket in claim.order:
        paid = run.post(
            claim_account(claim.id, bucket), min(left, buckets[bucket]), f"{claim.id} {bucket} {source}"
        )
        buckets[bucket] -= paid
        left -= paid


# --------------------------------------------------------------------------- mutable state


@dataclass
class Forfeit:
    """A defaulter's forfeited deposit not yet applied (§10), against its own defaulted price."""

    bidder: str
    defaulted_price_fen: int
    reserve_fen: int


@dataclass
class LotState:
    """Where a lot stands: ``listed``, ``closed`` (winner owes the balance), ``sold``, ``licensed``."""

    status: str = "listed"
    holds: dict[str, int] = field(default_factory=dict)
    barred: list[str] = field(default_factory=list)
    winner: str | None = None
    price_fen: int = 0
    extra_costs_fen: int = 0
    forfeits: list[Forfeit] = field(default_factory=list)

    def copy(self) -> LotState:
        """Return an independent copy (a draft for one event)."""
        forfeits = [replace(forfeit) for forfeit in self.forfeits]
        return replace(self, holds=dict(self.holds), barred=list(self.barred), forfeits=forfeits)


@dataclass
class _State:
    balances: dict[str, int]
    lots: dict[str, LotState]
    shortfall: dict[str, dict[str, int]] | None = None

    @property
    def finalized(self) -> bool:
        return self.shortfall is not None

    def copy(self) -> _State:
        lots = {lot_id: lot.copy() for lot_id, lot in self.lots.items()}
        shortfall = None if self.shortfall is None else {c: dict(b) for c, b in self.shortfall.items()}
        return _State(dict(self.balances), lots, shortfall)


Shortfall = dict[str, dict[str, int]]


def make_state(
    balances: Mapping[str, int], lots: Mapping[str, LotState], shortfall: Shortfall | None = None
) -> _State:
    """A state to ``advance`` from: current balances of the accounts the disposal touches, its lots."""
    return _State(dict(balances), dict(lots), shortfall)


def opening_postings(disposal: Disposal) -> list[Posting]:
    """Return the postings that fund each pool from ``poolfund:{pool}`` (no event id)."""
    return [
        Posting(f"poolfund:{pool.id}", f"pool:{pool.id}", pool.balance_fen, f"pool {pool.id} opening balance")
        for pool in disposal.pools.values()
        if pool.balance_fen
    ]


def _initial_state(disposal: Disposal, opening: Sequence[Posting]) -> _State:
    state = _State({}, {lot: LotState() for lot in disposal.lots})
    apply_postings(state.balances, opening)
    return state


@dataclass
class _Ctx:
    """One event being applied to a draft state; postings update the draft balances at once."""

    disposal: Disposal
    state: _State
    event_id: str
    postings: list[Posting] = field(default_factory=list)

    def post(self, debit: str, credit: str, amount_fen: int, text: str) -> None:
        if amount_fen:
            self.extend([Posting(debit, credit, amount_fen, f"[{self.event_id}] {text}")])

    def extend(self, postings: Iterable[Posting]) -> None:
        new = list(postings)
        self.postings.extend(new)
        apply_postings(self.state.balances, new)

    def balance(self, account: str) -> int:
        return self.state.balances.get(account, 0)

    def lot(self, lot_id: str, mode: str | None = None) -> tuple[Lot, LotState]:
        lot = self.disposal.lots.get(lot_id)
        if lot is None:
            raise UnknownLot(f"no lot {lot_id!r} in this disposal", lot=lot_id)
        if mode is not None and lot.mode != mode:
            raise WrongLotMode(f"lot {lot_id} is a {lot.mode} lot", lot=lot_id, mode=lot.mode)
        return lot, self.state.lots[lot_id]

    def outstanding(self) -> dict[str, dict[str, int]]:
        return {cid: _outstanding(claim, self.state.balances) for cid, claim in self.disposal.claims.items()}

    def unpaid_costs(self, lot: Lot) -> int:
        return unpaid_costs_fen(lot, self.state.lots[lot.id], self.state.balances)


def unpaid_costs_fen(lot: Lot, state: LotState, current: Mapping[str, int]) -> int:
    """Return the lot's disposal costs (listed + recorded) not yet paid into ``costs:{lot}``."""
    return lot.disposal_costs_fen + state.extra_costs_fen - current.get(costs_account(lot.id), 0)


def _outstanding(claim: Claim, current: Mapping[str, int]) -> dict[str, int]:
    return {b: claim.opening[b] - current.get(claim_account(claim.id, b), 0) for b in BUCKETS}


# --------------------------------------------------------------------------- event handlers


def _require_status(state: LotState, lot: Lot, needed: str, event: str) -> None:
    if state.status != needed:
        raise WrongLotState(
            f"{event} needs lot {lot.id} {needed}, it is {state.status}", lot=lot.id, status=state.status
        )


def _require_not_barred(state: LotState, lot: Lot, bidder: str) -> None:
    if bidder in state.barred:
        raise BidderBarred(f"{bidder} defaulted on lot {lot.id}", lot=lot.id, bidder=bidder)


def _require_positive(amount_fen: int) -> None:
    if amount_fen <= 0:
        raise NonPositiveAmount(f"amount {amount_fen} must be more than 0 fen", amount_fen=amount_fen)


def _hold(ctx: _Ctx, event: Hold) -> None:
    lot, state = ctx.lot(event.lot, SALE)
    _require_status(state, lot, "listed", "hold")
    _require_not_barred(state, lot, event.bidder)
    if event.bidder in state.holds:
        raise HoldExists(
            f"{event.bidder} already holds a deposit on {lot.id}", lot=lot.id, bidder=event.bidder
        )
    _require_positive(event.amount_fen)
    state.holds[event.bidder] = event.amount_fen
    text = f"deposit hold (pending) {event.bidder} on {lot.id}"
    ctx.post(buyer_account(event.bidder), hold_account(lot.id, event.bidder), event.amount_fen, text)


def _void(ctx: _Ctx, lot: Lot, state: LotState, bidder: str, amount_fen: int | None = None) -> None:
    """Void (all or the rest of) a bidder's hold back to the bidder."""
    amount = state.holds.pop(bidder) if amount_fen is None else amount_fen
    text = f"void hold: deposit released to {bidder}"
    ctx.post(hold_account(lot.id, bidder), buyer_account(bidder), amount, text)


def _void_all(ctx: _Ctx, lot: Lot, state: LotState, keep: str | None = None) -> None:
    for bidder in [b for b in state.holds if b != keep]:
        _void(ctx, lot, state, bidder)


def _close(ctx: _Ctx, event: Close) -> None:
    lot, state = ctx.lot(event.lot, SALE)
    _require_status(state, lot, "listed", "close")
    _require_not_barred(state, lot, event.winner)
    _require_positive(event.price_fen)
    _void_all(ctx, lot, state, keep=event.winner)
    state.status, state.winner, state.price_fen = "closed", event.winner, event.price_fen


def _fail(ctx: _Ctx, event: Fail) -> None:
    lot, state = ctx.lot(event.lot, SALE)
    _require_status(state, lot, "listed", "fail")
    _void_all(ctx, lot, state)


def commission_fen(lot: Lot, price_fen: int) -> int:
    """Return the buyer commission on top of ``price_fen`` (0 if the lot charges none)."""
    return buyer_commission_fen(price_fen, lot.slices) if lot.buyer_commission else 0


def balance_due_fen(lot: Lot, state: LotState) -> int:
    """Return what the winner still has to pay: price − deposit + commission (never below 0)."""
    total = state.price_fen + commission_fen(lot, state.price_fen)
    return max(0, total - state.holds.get(state.winner or "", 0))


def _pay(ctx: _Ctx, event: Pay) -> None:
    lot, state = ctx.lot(event.lot, SALE)
    _require_status(state, lot, "closed", "pay")
    due = balance_due_fen(lot, state)
    if event.amount_fen != due:
        raise WrongAmount(f"balance due is {due} fen, not {event.amount_fen}", due_fen=due, lot=lot.id)
    winner = state.winner or ""
    commission = commission_fen(lot, state.price_fen)
    _post_hold(ctx, lot, state, winner, state.price_fen + commission)
    text = f"balance due from {winner} (price - deposit + commission)"
    ctx.post(buyer_account(winner), escrow_account(lot.id), due, text)
    _release_forfeits(ctx, lot, state, new_price_fen=state.price_fen)
    ctx.post(escrow_account(lot.id), COMMISSION, commission, "buyer commission")
    _settle(ctx, lot, fee_base_fen=state.price_fen)
    state.status = "sold"


def _post_hold(ctx: _Ctx, lot: Lot, state: LotState, winner: str, total_fen: int) -> None:
    """Post the winner's deposit into escrow (the part needed; any excess is voided)."""
    deposit = state.holds.pop(winner, 0)
    applied = min(deposit, total_fen)
    text = f"post hold: {winner} deposit applied to price"
    ctx.post(hold_account(lot.id, winner), escrow_account(lot.id), applied, text)
    if deposit > applied:
        _void(ctx, lot, state, winner, deposit - applied)


def _release_forfeits(ctx: _Ctx, lot: Lot, state: LotState, new_price_fen: int | None) -> None:
    """§10.3: move each forfeit reserve into escrow as (b) re-auction shortfall, then (c) the rest."""
    for forfeit in state.forfeits:
        gap = 0 if new_price_fen is None else max(0, forfeit.defaulted_price_fen - new_price_fen)
        shortfall = min(forfeit.reserve_fen, gap)
        prefix = f"forfeit of {forfeit.bidder}: "
        ctx.post(
            forfeit_account(lot.id),
            escrow_account(lot.id),
            shortfall,
            prefix + "re-auction shortfall vs defaulted price",
        )
        rest = forfeit.reserve_fen - shortfall
        ctx.post(forfeit_account(lot.id), escrow_account(lot.id), rest, prefix + "toward the debtor's claim")
    state.forfeits.clear()


def _settle(ctx: _Ctx, lot: Lot, fee_base_fen: int) -> None:
    """Run the waterfall over everything now in the lot's escrow."""
    postings = waterfall(
        ctx.balance(escrow_account(lot.id)),
        fee_base_fen,
        lot,
        disposal=ctx.disposal,
        outstanding=ctx.outstanding(),
        unpaid_costs_fen=ctx.unpaid_costs(lot),
        event_id=ctx.event_id,
    )
    ctx.extend(postings)


def _default(ctx: _Ctx, event: Default) -> None:
    lot, state = ctx.lot(event.lot, SALE)
    _require_status(state, lot, "closed", "default")
    winner = state.winner or ""
    deposit = state.holds.pop(winner, 0)
    text = f"default by {winner}: deposit forfeited"
    ctx.post(hold_account(lot.id, winner), forfeit_account(lot.id), deposit, text)
    state.barred.append(winner)
    state.forfeits.append(Forfeit(winner, state.price_fen, deposit))
    state.status, state.winner, state.price_fen = "listed", None, 0
    _forfeits_pay_costs(ctx, lot, state)


def _forfeits_pay_costs(ctx: _Ctx, lot: Lot, state: LotState) -> None:
    """§10.2 (a): forfeit reserves pay the lot's unpaid disposal costs, oldest forfeit first."""
    for forfeit in state.forfeits:
        amount = min(forfeit.reserve_fen, ctx.unpaid_costs(lot))
        text = f"forfeit of {forfeit.bidder}: disposal costs"
        ctx.post(forfeit_account(lot.id), costs_account(lot.id), amount, text)
        forfeit.reserve_fen -= amount


def _cost(ctx: _Ctx, event: Cost) -> None:
    lot, state = ctx.lot(event.lot)
    _require_positive(event.amount_fen)
    state.extra_costs_fen += event.amount_fen
    _forfeits_pay_costs(ctx, lot, state)


def _receipt(ctx: _Ctx, event: Receipt) -> None:
    lot, state = ctx.lot(event.lot, LICENCE)
    _require_positive(event.amount_fen)
    text = f"{event.memo} from {event.payer}"
    ctx.post(buyer_account(event.payer), escrow_account(lot.id), event.amount_fen, text)
    _settle(ctx, lot, fee_base_fen=event.amount_fen)
    state.status = "licensed"


def _finalize(ctx: _Ctx, event: Finalize) -> None:
    for lot in ctx.disposal.lots.values():
        _finalize_lot(ctx, lot, ctx.state.lots[lot.id])
    ctx.state.shortfall = ctx.outstanding()
    _compensate(ctx)


def _finalize_lot(ctx: _Ctx, lot: Lot, state: LotState) -> None:
    """§11: void unresolved holds; a leftover forfeit goes to the claims with fee base 0 (§10.4)."""
    _void_all(ctx, lot, state)
    if state.status == "closed":
        state.status, state.winner, state.price_fen = "listed", None, 0
    if any(forfeit.reserve_fen for forfeit in state.forfeits):
        _release_forfeits(ctx, lot, state, new_price_fen=None)
        _settle(ctx, lot, fee_base_fen=0)


def _compensate(ctx: _Ctx) -> None:
    """§11: pool compensation, claims in listed order, min(share of principal loss, caps, balance)."""
    used: dict[tuple[str, str], int] = {}
    for claim in ctx.disposal.claims.values():
        if claim.pool is not None:
            _compensate_claim(ctx, claim, ctx.disposal.pools[claim.pool], used)


def _compensate_claim(ctx: _Ctx, claim: Claim, pool: Pool, used: dict[tuple[str, str], int]) -> None:
    loss = claim.opening["principal"] - ctx.balance(claim_account(claim.id, "principal"))
    paid = ctx.balance(f"poolcomp:{claim.id}")  # a claim finalized in an earlier lot is not paid twice
    terms = [basis_points_fen(loss, pool.share_bp) - paid, ctx.balance(f"pool:{pool.id}")]
    terms += [pool.per_loan_cap_fen - paid] if pool.per_loan_cap_fen is not None else []
    enterprise = (pool.id, claim.debtor or claim.id)
    if pool.per_enterprise_cap_fen is not None:
        terms.append(pool.per_enterprise_cap_fen - used.get(enterprise, 0))
    amount = max(0, min(terms))
    used[enterprise] = used.get(enterprise, 0) + amount
    text = f"pool {pool.id} compensation on principal loss of {claim.id}"
    ctx.post(f"pool:{pool.id}", f"poolcomp:{claim.id}", amount, text)


def _step(ctx: _Ctx, event: Event) -> None:
    match event:
        case Hold():
            _hold(ctx, event)
        case Close():
            _close(ctx, event)
        case Fail():
            _fail(ctx, event)
        case Pay():
            _pay(ctx, event)
        case Default():
            _default(ctx, event)
        case Cost():
            _cost(ctx, event)
        case Receipt():
            _receipt(ctx, event)
        case Finalize():
            _finalize(ctx, event)
        case Reverse():  # handled by the Book, which knows the event log
            raise AssertionError("reverse is applied by Book")


def advance(disposal: Disposal, state: _State, event: Event) -> tuple[_State, tuple[Posting, ...]]:
    """Apply one (non-reverse) event to a copy of ``state``: the pure transition of the fold.

    Raises:
        MarketError: any refusal of the event (the input ``state`` is untouched).
    """
    draft = state.copy()
    ctx = _Ctx(disposal, draft, event.id)
    _step(ctx, event)
    return draft, tuple(ctx.postings)


# --------------------------------------------------------------------------- the book


@dataclass(frozen=True, slots=True)
class Applied:
    """The result of one event: its postings in order; ``duplicate`` on an exact replay of its id."""

    event_id: str
    seq: int
    event: JsonMap
    content: str
    postings: tuple[Posting, ...]
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class JournalLine:
    """A posting with its place: ``(event_id, ordinal)`` is its id; opening postings have no event."""

    event_id: str | None
    ordinal: int
    posting: Posting


@dataclass(frozen=True, slots=True)
class ClaimFigures:
    """A claim statement's figures (§13): opening = recovered + outstanding, per bucket."""

    claim: str
    bank: str
    opening: Mapping[str, int]
    recovered: Mapping[str, int]
    outstanding: Mapping[str, int]
    pool_compensation_fen: int
    status: str
    shortfall: Mapping[str, int] | None
    lines: tuple[JournalLine, ...]


@dataclass(frozen=True, slots=True)
class LotView:
    """A lot's status for statements: holds still unresolved, bars, forfeit reserve, unpaid costs."""

    lot: str
    mode: str
    status: str
    winner: str | None
    price_fen: int
    holds: Mapping[str, int]
    barred: tuple[str, ...]
    forfeit_reserve_fen: int
    unpaid_costs_fen: int
    balance_due_fen: int


@dataclass
class _Entry:
    event: Event
    applied: Applied
    effective: tuple[Posting, ...]
    active: bool = True
    reversed_by: str | None = None


class Book:
    """One disposal's settlement state, a pure fold of its events.

    ``apply`` is the only way to change it; ``replay`` rebuilds it from stored
    events; the read-outs (``balances``, ``claim``, ``lot``, ``result``) are
    computed from the journal and the event-derived registers.
    """

    def __init__(self, disposal: Disposal) -> None:
        self.disposal = disposal
        self.opening = tuple(opening_postings(disposal))
        self._state = _initial_state(disposal, self.opening)
        self._lines = [JournalLine(None, n, p) for n, p in enumerate(self.opening, 1)]
        self._entries: dict[str, _Entry] = {}
        self._limits = {
            claim_account(c.id, b): c.opening[b] for c in disposal.claims.values() for b in BUCKETS
        }

    @classmethod
    def from_input(cls, data: JsonMap) -> Book:
        """Build an empty Book (no events applied) from the §12 input shape.

        Raises:
            ValidationFailed: on malformed input.
            NotIntegerFen: on an amount that is not integer fen.
        """
        return cls(parse_disposal(data))

    @classmethod
    def replay(cls, data: JsonMap, events: Iterable[JsonMap]) -> Book:
        """Rebuild a Book from its input and its stored events, in order.

        Raises:
            MarketError: if a stored event is refused (the store and the rules disagree).
        """
        book = cls.from_input(data)
        for event in events:
            book.apply(event)
        return book

    # ----------------------------------------------------------------- writing

    def apply(self, event: JsonMap) -> Applied:
        """Apply one event all-or-none and return its postings.

        Raises:
            ValidationFailed, NotIntegerFen: malformed event.
            IdReused: the id was used before with different content.
            Finalized: a new event after ``finalize``.
            MarketError: the event's own refusals (``hold_exists``, ``bidder_barred``,
                ``wrong_amount``, ``wrong_lot_state``, ...). A refusal changes nothing.
            LedgerInvariantBroken: a bug: the result would break a §5 invariant.
        """
        eid = event_id(event)
        content = canonical_json(event)
        known = self._entries.get(eid)
        if known is not None:
            return self._repeat(known, content)
        parsed = parse_event(event)
        if self._state.finalized:
            raise Finalized("the disposal is finalized; no further events", event=eid)
        if isinstance(parsed, Reverse):
            return self._apply_reverse(parsed, content)
        state, postings = advance(self.disposal, self._state, parsed)
        self._verify(state, postings)
        return self._commit(parsed, content, state, postings)

    def _repeat(self, entry: _Entry, content: str) -> Applied:
        if entry.applied.content != content:
            raise IdReused(f"event id {entry.applied.event_id!r} was used for different content")
        return replace(entry.applied, duplicate=True)

    def _verify(self, state: _State, postings: Sequence[Posting]) -> None:
        replayed = dict(self._state.balances)
        apply_postings(replayed, postings)
        problems = drift_problems(replayed, state.balances)
        problems += check_balances(state.balances, limits=self._limits, expected=_registers(state))
        if problems:
            raise LedgerInvariantBroken(problems)

    def _commit(self, event: Event, content: str, state: _State, postings: tuple[Posting, ...]) -> Applied:
        applied = Applied(event.id, len(self._entries) + 1, json.loads(content), content, postings)
        effective = () if isinstance(event, Reverse) else postings
        self._entries[event.id] = _Entry(event, applied, effective)
        self._lines += [JournalLine(event.id, n, p) for n, p in enumerate(postings, 1)]
        self._state = state
        return applied

    # ----------------------------------------------------------------- reversal (§6)

    def _apply_reverse(self, event: Reverse, content: str) -> Applied:
        target = self._reversible(event.target)
        original = self._original(target)
        active = {eid: entry.active for eid, entry in self._entries.items()}
        active[original.applied.event_id] = not original.active
        state, effective = self._rebuild(active)
        postings = self._correction(event.id, effective)
        self._verify(state, postings)
        applied = self._commit(event, content, state, postings)
        for eid, entry in self._entries.items():
            entry.active, entry.effective = active.get(eid, True), effective.get(eid, ())
        target.reversed_by = event.id
        return applied

    def _reversible(self, target_id: str) -> _Entry:
        target = self._entries.get(target_id)
        if target is None:
            raise UnknownEvent(f"no event {target_id!r} to reverse", target=target_id)
        if isinstance(target.event, Hold):
            raise NotReversible("a hold is not reversed: it is voided or posted", target=target_id)
        if target.reversed_by is not None:
            raise AlreadyReversed(f"{target_id} was reversed by {target.reversed_by}", target=target_id)
        return target

    def _original(self, entry: _Entry) -> _Entry:
        """Follow a chain of reversals down to the event they ultimately toggle."""
        while isinstance(entry.event, Reverse):
            entry = self._entries[entry.event.target]
        return entry

    def _rebuild(self, active: Mapping[str, bool]) -> tuple[_State, dict[str, tuple[Posting, ...]]]:
        """Fold the active events again from the opening state (reverse-and-replay)."""
        state = _initial_state(self.disposal, self.opening)
        effective: dict[str, tuple[Posting, ...]] = {}
        for eid, entry in self._entries.items():
            if isinstance(entry.event, Reverse) or not active[eid]:
                continue
            try:
                state, effective[eid] = advance(self.disposal, state, entry.event)
            except MarketError as exc:
                raise ReverseBlocked(
                    f"{eid} cannot be replayed: {exc.detail}", event=eid, cause=exc.code
                ) from exc
        return state, effective

    def _correction(
        self, reverse_id: str, effective: Mapping[str, tuple[Posting, ...]]
    ) -> tuple[Posting, ...]:
        """Mirror every changed event's old postings (newest first), then post its new ones in order."""
        changed = [e for eid, e in self._entries.items() if effective.get(eid, ()) != e.effective]
        mirrors = [
            p.mirrored(f"[{reverse_id}] reversal of {p.memo}")
            for e in reversed(changed)
            for p in reversed(e.effective)
        ]
        replays = [e for e in changed if effective.get(e.applied.event_id)]
        reposted = [
            _retag(p, f"{reverse_id}:replay:{n}")
            for n, e in enumerate(replays, 1)
            for p in effective[e.applied.event_id]
        ]
        return tuple(mirrors + reposted)

    # ----------------------------------------------------------------- reading

    @property
    def finalized(self) -> bool:
        """Whether ``finalize`` has been applied."""
        return self._state.finalized

    @property
    def journal(self) -> tuple[Posting, ...]:
        """Every posting in order, opening postings first."""
        return tuple(line.posting for line in self._lines)

    @property
    def lines(self) -> tuple[JournalLine, ...]:
        """Every posting with its ``(event_id, ordinal)``."""
        return tuple(self._lines)

    @property
    def applied(self) -> tuple[Applied, ...]:
        """Every accepted event's result, in order (exact replays are not repeated)."""
        return tuple(entry.applied for entry in self._entries.values())

    def balance(self, account: str) -> int:
        """Return one account's balance now (0 if never touched)."""
        return self._state.balances.get(account, 0)

    def balances(self, as_of: str | None = None) -> dict[str, int]:
        """Return every touched account's balance, now or right after event ``as_of``.

        Raises:
            UnknownEvent: if ``as_of`` is not an applied event.
        """
        if as_of is None:
            return dict(self._state.balances)
        if as_of not in self._entries:
            raise UnknownEvent(f"no event {as_of!r}", event=as_of)
        seq = self._entries[as_of].applied.seq
        order = {eid: entry.applied.seq for eid, entry in self._entries.items()}
        lines = [line.posting for line in self._lines if line.event_id is None or order[line.event_id] <= seq]
        current: dict[str, int] = {}
        apply_postings(current, lines)
        return current

    def problems(self) -> list[LedgerProblem]:
        """Re-check every §5 invariant from the journal (a reconcile report; empty when sound)."""
        replayed: dict[str, int] = {}
        apply_postings(replayed, self.journal)
        problems = drift_problems(replayed, self._state.balances)
        return problems + check_balances(replayed, limits=self._limits, expected=_registers(self._state))

    def claim(self, claim_id: str) -> ClaimFigures:
        """Return a claim's statement figures.

        Raises:
            KeyError: if there is no such claim.
        """
        claim = self.disposal.claims[claim_id]
        outstanding = _outstanding(claim, self._state.balances)
        recovered = {b: claim.opening[b] - outstanding[b] for b in BUCKETS}
        accounts = set(claim.accounts.values())
        shortfall = None if self._state.shortfall is None else self._state.shortfall[claim_id]
        return ClaimFigures(
            claim_id,
            claim.bank,
            dict(claim.opening),
            recovered,
            outstanding,
            self.balance(f"poolcomp:{claim_id}"),
            _claim_status(outstanding, self.finalized),
            shortfall,
            tuple(line for line in self._lines if {line.posting.debit, line.posting.credit} & accounts),
        )

    def lot(self, lot_id: str) -> LotView:
        """Return a lot's current status.

        Raises:
            KeyError: if there is no such lot.
        """
        lot, state = self.disposal.lots[lot_id], self._state.lots[lot_id]
        return LotView(
            lot_id,
            lot.mode,
            state.status,
            state.winner,
            state.price_fen,
            dict(state.holds),
            tuple(state.barred),
            sum(forfeit.reserve_fen for forfeit in state.forfeits),
            unpaid_costs_fen(lot, state, self._state.balances),
            balance_due_fen(lot, state) if state.status == "closed" else 0,
        )

    def result(self) -> dict[str, object]:
        """Return the ``expected`` shape of the settlement vectors for the journal so far."""
        current = self._state.balances
        touched = set(current) | set(self._limits)
        return {
            "postings": [posting.as_dict() for posting in self.journal],
            "balances": {name: current.get(name, 0) for name in sorted(touched)},
            "per_claim": {cid: _per_claim(self.claim(cid)) for cid in self.disposal.claims},
            "surplus_to_pledgor_fen": _kind_total(current, "pledgor"),
            "pool_compensation_fen": _kind_total(current, "poolcomp"),
        }


def _retag(posting: Posting, new_id: str) -> Posting:
    """Replace the leading ``[event id]`` of a posting's memo."""
    _, _, text = posting.memo.partition("] ")
    return Posting(posting.debit, posting.credit, posting.amount_fen, f"[{new_id}] {text}")


def _registers(state: _State) -> dict[str, int]:
    """Return the balances the registers pin: a hold = its unresolved amount, a forfeit = its reserve."""
    expected = {name: 0 for name in state.balances if name.startswith(("hold:", "forfeit:"))}
    for lot_id, lot in state.lots.items():
        expected.update({hold_account(lot_id, bidder): amount for bidder, amount in lot.holds.items()})
        expected[forfeit_account(lot_id)] = sum(forfeit.reserve_fen for forfeit in lot.forfeits)
    return expected


def _claim_status(outstanding: Mapping[str, int], finalized: bool) -> str:
    if not any(outstanding.values()):
        return "paid"
    return "finalized with shortfall" if finalized else "open"


def _per_claim(figures: ClaimFigures) -> dict[str, dict[str, int]]:
    return {"recovered": dict(figures.recovered), "outstanding": dict(figures.outstanding)}


def _kind_total(current: Mapping[str, int], kind: str) -> int:
    return sum(amount for name, amount in current.items() if name.startswith(f"{kind}:"))


def settle(data: JsonMap) -> dict[str, object]:
    """Apply the input's events to a fresh Book and return the vectors' ``expected`` structure.

    Raises:
        ValidationFailed, NotIntegerFen: malformed input or event.
        MarketError: an event is refused (see ``Book.apply``).
    """
    book = Book.from_input(data)
    for event in _list(data.get("events", []), "input.events"):
        book.apply(_map(event, "input.events"))
    return book.result()
