"""Money: integer fen, exact splits, rate rounding.

Every amount in the marketplace is an ``int`` number of fen (1 CNY = 100 fen),
stored as ``BIGINT``. Nothing here touches a float: splits use the
largest-remainder method on exact integer products (which reach 10^24 for
bundle splits, far above 2^53), and every rate is floored exactly once on the
exact value (SETTLEMENT.md §2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from market.errors import NotIntegerFen

BIGINT_MIN = -(2**63)
BIGINT_MAX = 2**63 - 1
BP_DENOMINATOR = 10_000
FEN_PER_CNY = 100


@dataclass(frozen=True, slots=True)
class CommissionSlice:
    """One marginal slice of the buyer commission: ``rate_bp`` on the price up to ``upto_fen``.

    ``upto_fen`` is the slice's upper boundary (inclusive) measured from price 0;
    ``None`` means "no upper boundary" and may only be the last slice.
    """

    upto_fen: int | None
    rate_bp: int


#: Rule 33 / S2 §29: 5 % to CNY 2 M, 3 % to 10 M, 2 % to 50 M, 1 % to 100 M, 0.5 % above.
DEFAULT_SLICES: tuple[CommissionSlice, ...] = (
    CommissionSlice(200_000_000, 500),
    CommissionSlice(1_000_000_000, 300),
    CommissionSlice(5_000_000_000, 200),
    CommissionSlice(10_000_000_000, 100),
    CommissionSlice(None, 50),
)


def require_fen(value: object) -> int:
    """Return ``value`` if it is a genuine ``int`` within the signed BIGINT range.

    Raises:
        NotIntegerFen: for ``bool``, ``float`` (even ``100.0``), ``str``, ``Decimal``,
            ``None`` and any other non-``int``, and for ints outside BIGINT.
    """
    if type(value) is not int:
        raise NotIntegerFen(f"amount must be integer fen, got {type(value).__name__} {value!r}")
    if not BIGINT_MIN <= value <= BIGINT_MAX:
        raise NotIntegerFen(f"amount {value} is outside the BIGINT range")
    return value


def split_pro_rata(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` fen over ``weights`` by the largest-remainder method.

    Each part gets ⌊total·wᵢ/W⌋; the fen left over go one each to the largest
    remainders, ties to the lower index. The parts always sum to ``total``.
    A zero total over zero weights gives zeros.

    Raises:
        ValueError: if ``total`` or a weight is negative, or the weights sum to 0
            while ``total`` is not 0.
    """
    _check_split_args(total, weights)
    whole = sum(weights)
    if whole == 0:
        return [0] * len(weights)
    parts = [total * w // whole for w in weights]
    remainders = [total * w % whole for w in weights]
    leftover = total - sum(parts)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for index in by_remainder[:leftover]:
        parts[index] += 1
    return parts


def _check_split_args(total: int, weights: Sequence[int]) -> None:
    if total < 0 or any(w < 0 for w in weights):
        raise ValueError("split_pro_rata needs a non-negative total and non-negative weights")
    if total and not sum(weights):
        raise ValueError("split_pro_rata cannot split a non-zero total over zero total weight")


def basis_points_fen(amount_fen: int, bp: int) -> int:
    """Return ⌊amount × bp / 10 000⌋ (a platform fee or a pool share), floored once."""
    return amount_fen * bp // BP_DENOMINATOR


def buyer_commission_fen(price_fen: int, slices: Sequence[CommissionSlice] = DEFAULT_SLICES) -> int:
    """Return the buyer commission on ``price_fen``: Σ slice × rate, exact, floored once.

    Raises:
        ValueError: if the price is negative or the slice table is malformed.
    """
    if price_fen < 0:
        raise ValueError("price must not be negative")
    exact = 0  # in 1/10 000 fen
    lower = 0
    for part in _checked_slices(slices):
        upper = price_fen if part.upto_fen is None else min(price_fen, part.upto_fen)
        exact += max(0, upper - lower) * part.rate_bp
        lower = lower if part.upto_fen is None else part.upto_fen
    return exact // BP_DENOMINATOR


def _checked_slices(slices: Sequence[CommissionSlice]) -> Sequence[CommissionSlice]:
    bounds = [s.upto_fen for s in slices]
    if not slices or bounds[-1] is not None or None in bounds[:-1]:
        raise ValueError("commission slices must end with one open-ended slice")
    finite = [b for b in bounds if b is not None]
    if finite != sorted(set(finite)) or any(s.rate_bp < 0 for s in slices):
        raise ValueError("commission slice boundaries must increase and rates be non-negative")
    return slices


def format_cny(fen: int) -> str:
    """Format fen as CNY with thousands separators: ``123456`` -> ``"1,234.56"``, ``-5`` -> ``"-0.05"``."""
    sign = "-" if fen < 0 else ""
    yuan, cents = divmod(abs(fen), FEN_PER_CNY)
    return f"{sign}{yuan:,}.{cents:02d}"
