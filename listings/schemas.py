"""Input shapes of collateral and listings (pydantic; syntax only — rules live in ``model``).

Shared by the JSON API and the bulk importer, so a row in a CSV file and a JSON body are
checked by the same code. Amounts are strict integers in fen: ``100.0``, ``"100"`` and
``true`` are refused.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

Fen = Annotated[int, Field(strict=True, ge=0, le=9_000_000_000_000_000)]
PositiveFen = Annotated[int, Field(strict=True, ge=1, le=9_000_000_000_000_000)]
Id = Annotated[int, Field(strict=True, ge=1, le=2**63 - 1)]
Text200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
OptText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
RegNo = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
CreditCode = Annotated[
    str,
    BeforeValidator(lambda v: v.strip().upper() if isinstance(v, str) else v),  # before the pattern check
    StringConstraints(pattern=r"^[0-9A-Z]{18}$"),
]
Kind = Literal[
    "invention_patent",
    "utility_model",
    "design_patent",
    "trademark",
    "copyright",
    "software_copyright",
    "ic_layout",
    "geographical_indication",
]
LegalStatusIn = Literal["pending", "granted", "registered", "lapsed", "expired", "invalidated", "revoked"]
LicenseTypeIn = Literal["exclusive", "sole", "non_exclusive"]
Mode = Literal["license", "transfer", "bundle", "entrusted_acquisition"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class DateStrict(Strict):
    """Dates arrive as ISO strings in JSON; allow that one conversion."""

    model_config = ConfigDict(extra="forbid", strict=False)


class CoOwnerIn(Strict):
    name: Text200
    consented: bool = False


class LicenseIn(DateStrict):
    type: LicenseTypeIn = "non_exclusive"
    field: OptText = ""
    territory: OptText = ""
    starts_on: date
    ends_on: date | None = None
    licensee: OptText = ""


class AssetIn(DateStrict):
    kind: Kind
    registration_no: RegNo
    title: OptText = ""
    title_en: OptText = ""
    description: OptText = ""
    holder: Text200
    filed_on: date | None = None
    granted_on: date | None = None
    expires_on: date | None = None
    first_use_on: date | None = None
    created_on: date | None = None
    legal_status: LegalStatusIn
    classes: list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]] = []
    appraisal_fen: Fen | None = None
    appraised_on: date | None = None
    appraiser: OptText = ""
    co_owners: list[CoOwnerIn] = []
    licenses: list[LicenseIn] = []
    annuity_paid_through: date | None = None
    preservation_order: bool = False
    ownership_dispute: bool = False
    similar_mark_group: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = None
    pledgee_credit_code: CreditCode | None = None

    @field_validator("appraisal_fen", mode="before")
    @classmethod
    def _integer_fen(cls, v: object) -> object:
        return _strict_int(v)

    @model_validator(mode="after")
    def _needs_a_title(self) -> AssetIn:
        if not self.title and not self.title_en:
            raise ValueError("give a title (Chinese) or title_en (English)")
        return self


def _strict_int(v: object) -> object:
    if v is None or (isinstance(v, int) and not isinstance(v, bool)):
        return v
    raise ValueError("amounts must be integers in fen")


class BorrowerIn(Strict):
    name: Text200
    credit_code: CreditCode


class PledgeIn(DateStrict):
    asset_id: Id
    rank: Annotated[int, Field(strict=True, ge=1, le=1000)] | None = None
    registration_no: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = None
    registered_on: date | None = None

    @field_validator("asset_id", "rank", mode="before")
    @classmethod
    def _ints(cls, v: object) -> object:
        return _strict_int(v)


class ClaimIn(DateStrict):
    loan_no: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    borrower: BorrowerIn
    principal_fen: Fen
    interest_fen: Fen
    costs_fen: Fen
    default_interest_fen: Fen = 0
    defaulted_on: date
    limitation_interrupted_on: date | None = None
    bucket_order: list[Literal["costs", "interest", "principal"]] | None = None
    pool_code: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = None
    pledges: list[PledgeIn] = []

    @field_validator("principal_fen", "interest_fen", "costs_fen", "default_interest_fen", mode="before")
    @classmethod
    def _integer_fen(cls, v: object) -> object:
        return _strict_int(v)

    @field_validator("bucket_order")
    @classmethod
    def _permutation(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and sorted(v) != ["costs", "interest", "principal"]:
            raise ValueError("bucket_order must name costs, interest and principal once each")
        return v


class LicenseTermsIn(DateStrict):
    type: LicenseTypeIn = "non_exclusive"
    term_months: Annotated[int, Field(strict=True, ge=1, le=1200)]
    territory: Text200
    field: Text200
    upfront_fen: Fen | None = None
    royalty_bp: Annotated[int, Field(strict=True, ge=0, le=10000)] | None = None
    royalty_base: OptText = ""
    starts_on: date | None = None


class BackstopIn(Strict):
    acquirer_org_id: Id
    price_fen: PositiveFen
    break_up_fee_fen: Fen = 0
    expense_fen: Fen = 0


class ListingIn(Strict):
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    title_en: OptText = ""
    description: Annotated[str, StringConstraints(max_length=20000)] = ""
    mode: Mode
    asset_ids: Annotated[list[Id], Field(min_length=1, max_length=200)]
    license_terms: LicenseTermsIn | None = None
    backstop: BackstopIn | None = None
    asking_price_fen: PositiveFen | None = None
    pledgor_opt_in: bool = False
