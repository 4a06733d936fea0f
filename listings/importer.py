"""Bulk import of assets, claims and pledges from CSV or XLSX: reading and validation (pure).

Nothing here touches the database: ``parse`` turns a file into validated rows plus a list
of every problem found (sheet, row number as the user sees it, column, reason);
``listings.import_service.run_import`` checks references against the database and writes.

File layout
-----------
Three record types, each identified by its natural key within the importing bank:

========  ==========================================  ==================================
record    natural key                                 validated by
========  ==========================================  ==================================
asset     (``kind``, ``registration_no``)             ``listings.schemas.AssetIn``
claim     ``loan_no``                                 ``listings.schemas.ClaimIn``
pledge    (``loan_no``, ``kind``, ``registration_no``)  ``listings.schemas.PledgeIn``
========  ==========================================  ==================================

* **XLSX**: sheets ``assets``, ``claims`` and ``pledges`` (any may be missing or empty);
  other sheets (the template's ``instructions``) are ignored, unless they have a
  ``record`` column, in which case they are read like the CSV layout.
* **CSV**: one file whose first column is ``record`` (``asset`` | ``claim`` | ``pledge``)
  followed by the union of the three column sets; a row fills only the columns of its own
  record type (a value in another type's column is an error). UTF-8 with or without BOM,
  UTF-16 with BOM, or GB18030 (what Excel "CSV" saves on Chinese Windows); the delimiter
  (comma, tab or semicolon) is taken from the header line.

The first non-empty row of a table is its header, in the template row 1, and rows are
numbered as a spreadsheet shows them (the header is row 1, the first data row is row 2;
in CSV one record is one row, even when a quoted cell spans several lines). Column names
are the English keys below or their Chinese names (``COLUMNS``); order does not matter;
an unknown or duplicated column is an error.

Cell rules
----------
* **Ids are text.** ``registration_no``, ``loan_no``, credit codes, ``pledge_registration_no``,
  ``similar_mark_group``, ``pool_code`` and ``classes`` are read as text exactly as written,
  so ``00123`` stays ``00123``. CSV cells are always text. In XLSX a *Number* cell in such a
  column is refused (code ``id_not_text``) because Excel has already dropped leading zeros
  and every digit past the 15th from it, so its value may not be what the user typed. The
  one exception is a whole number shown with a fixed-width zero format such as ``000000``:
  its text form is then the zero-padded figure Excel displays (``123`` → ``000123``),
  which is what the user typed and sees, and that text is used.
* **Amounts** (``*_fen``) are whole numbers of fen: digits only, 0 to 9×10^15 (the limit of
  ``listings.schemas.Fen``). ``1.5``,
  ``1e3``, ``1,000``, ``¥100`` and negative figures are refused. An XLSX Number cell is
  accepted when it holds a whole number (and, above 2^53, is refused: doubles are not exact).
* **Dates**: ``2024-01-31``, also ``2024/01/31``, ``2024.01.31``, ``2024年1月31日`` and XLSX date
  cells (without a time of day).
* **Yes/no**: ``yes/no``, ``true/false``, ``1/0``, ``是/否``; empty means no.
* **Lists** (``classes``, ``bucket_order``, ``co_owners``): items separated by ``;``
  (also ``；``, ``,``, ``，``, ``、``). A co-owner is ``name`` or ``name=yes`` when that co-owner
  consented.
* ``kind``, ``legal_status`` and ``record`` take the English codes or their Chinese names.

Every problem of every row is reported, not the first; a file with any problem is not
imported at all. Licences recorded on an asset are not part of the layout and are kept.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from listings.schemas import AssetIn, ClaimIn, Kind, PledgeIn, RegNo
from market import clock

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_ROWS = 100_000
MAX_UNPACKED_BYTES = 400 * 1024 * 1024
FEN_MAX = 9_000_000_000_000_000  # = listings.schemas.Fen's upper bound
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MIME = "text/csv"

RecordType = Literal["asset", "claim", "pledge"]
RECORD_TYPES: tuple[RecordType, ...] = ("asset", "claim", "pledge")
SHEETS: dict[RecordType, str] = {"asset": "assets", "claim": "claims", "pledge": "pledges"}
ColType = Literal["text", "id", "ids", "enum", "date", "fen", "int", "bool", "list", "co_owners"]
Progress = Callable[[int], None]
AssetKey = tuple[str, str]
PledgeKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    type: ColType
    zh: str
    help_en: str
    help_zh: str
    required: bool = False


def _c(key: str, type_: ColType, zh: str, en: str, zh_help: str, required: bool = False) -> Column:
    return Column(key, type_, zh, en, zh_help, required)


RECORD = _c(
    "record",
    "enum",
    "记录类型",
    "CSV only: asset, claim or pledge",
    "仅 CSV：asset（资产）、claim（债权）或 pledge（质押）",
)
KIND = _c(
    "kind",
    "enum",
    "资产类型",
    "invention_patent, utility_model, design_patent, trademark, copyright, software_copyright, "
    "ic_layout or geographical_indication (or the Chinese name)",
    "发明专利、实用新型、外观设计、商标、著作权、软件著作权、集成电路布图设计或地理标志（或英文代码）",
    True,
)
REGISTRATION_NO = _c(
    "registration_no",
    "id",
    "登记号",
    "Patent, registration or certificate number, as text",
    "专利号、注册号或登记证书号（文本）",
    True,
)
LOAN_NO = _c(
    "loan_no",
    "id",
    "贷款编号",
    "The bank's loan (claim) number, as text",
    "银行贷款（债权）编号（文本）",
    True,
)

ASSET_COLUMNS: tuple[Column, ...] = (
    KIND,
    REGISTRATION_NO,
    _c(
        "title",
        "text",
        "名称",
        "Chinese title (title or title_en is required)",
        "中文名称（名称与英文名称至少填一项）",
    ),
    _c("title_en", "text", "英文名称", "English title", "英文名称"),
    _c("description", "text", "描述", "Description", "描述"),
    _c("holder", "text", "权利人", "Right holder (pledgor)", "权利人（出质人）", True),
    _c("filed_on", "date", "申请日", "Filing date", "申请日"),
    _c("granted_on", "date", "授权日", "Grant or registration date", "授权日或注册日"),
    _c("expires_on", "date", "到期日", "Expiry date, if known", "到期日（如已知）"),
    _c("first_use_on", "date", "首次使用日", "First use (marks)", "首次使用日（商标）"),
    _c(
        "created_on",
        "date",
        "创作完成日",
        "Creation date (copyrights, IC layouts)",
        "创作完成日（著作权、布图设计）",
    ),
    _c(
        "legal_status",
        "enum",
        "法律状态",
        "pending, granted, registered, lapsed, expired, invalidated or revoked",
        "申请中、已授权、已注册、失效、期满、无效或撤销（或英文代码）",
        True,
    ),
    _c(
        "classes",
        "ids",
        "类别",
        "Nice / Locarno classes, e.g. 09;42 (text)",
        "尼斯或洛迦诺分类，如 09;42（文本）",
    ),
    _c("appraisal_fen", "fen", "评估值（分）", "Appraised value in fen", "评估值，单位：分"),
    _c("appraised_on", "date", "评估基准日", "Appraisal date", "评估基准日"),
    _c("appraiser", "text", "评估机构", "Appraiser", "评估机构"),
    _c(
        "co_owners",
        "co_owners",
        "共有人",
        "Co-owners: name;name=yes (yes = consented)",
        "共有人：名称;名称=是（“是”表示已同意处置）",
    ),
    _c(
        "annuity_paid_through",
        "date",
        "年费缴至",
        "Annuities paid through (patents)",
        "年费缴纳截止日（专利）",
    ),
    _c(
        "preservation_order",
        "bool",
        "查封保全",
        "Under a court preservation order: yes/no",
        "是否被法院查封保全：是/否",
    ),
    _c("ownership_dispute", "bool", "权属争议", "Ownership disputed: yes/no", "是否存在权属争议：是/否"),
    _c(
        "similar_mark_group",
        "id",
        "近似商标组",
        "Group code shared by the holder's same-or-similar marks",
        "权利人相同或近似商标的组编号",
    ),
    _c(
        "pledgee_credit_code",
        "id",
        "质权人信用代码",
        "Pledgee's credit code if not your bank (18 characters, text)",
        "质权人统一社会信用代码（非本行时填写，18 位文本）",
    ),
)
CLAIM_COLUMNS: tuple[Column, ...] = (
    LOAN_NO,
    _c("borrower_name", "text", "借款人名称", "Borrower", "借款人名称", True),
    _c(
        "borrower_credit_code",
        "id",
        "借款人信用代码",
        "Borrower's unified social credit code (18 characters, text)",
        "借款人统一社会信用代码（18 位文本）",
        True,
    ),
    _c("principal_fen", "fen", "本金（分）", "Outstanding principal in fen", "未偿本金，单位：分", True),
    _c("interest_fen", "fen", "利息（分）", "Outstanding interest in fen", "未付利息，单位：分", True),
    _c("costs_fen", "fen", "费用（分）", "Enforcement costs in fen", "实现债权的费用，单位：分", True),
    _c(
        "default_interest_fen",
        "fen",
        "罚息（分）",
        "Default interest in fen (default 0)",
        "罚息，单位：分（默认 0）",
    ),
    _c("defaulted_on", "date", "违约日", "Date of default", "违约日", True),
    _c(
        "limitation_interrupted_on",
        "date",
        "时效中断日",
        "Last interruption of the limitation period",
        "诉讼时效最近一次中断日",
    ),
    _c(
        "bucket_order",
        "list",
        "清偿顺序",
        "Payment order, e.g. costs;interest;principal (default)",
        "清偿顺序，如 costs;interest;principal（默认）",
    ),
    _c("pool_code", "id", "资产包编号", "Portfolio (pool) code", "资产包编号"),
)
PLEDGE_COLUMNS: tuple[Column, ...] = (
    LOAN_NO,
    KIND,
    REGISTRATION_NO,
    _c("rank", "int", "顺位", "Declared pledge rank (1 = first)", "申报的质押顺位（1 为第一顺位）"),
    _c(
        "pledge_registration_no",
        "id",
        "质押登记号",
        "Pledge registration number (text)",
        "质押登记号（文本）",
    ),
    _c("registered_on", "date", "质押登记日", "Pledge registration date", "质押登记日"),
)
COLUMNS: dict[RecordType, tuple[Column, ...]] = {
    "asset": ASSET_COLUMNS,
    "claim": CLAIM_COLUMNS,
    "pledge": PLEDGE_COLUMNS,
}
KEYS: dict[RecordType, frozenset[str]] = {t: frozenset(c.key for c in cols) for t, cols in COLUMNS.items()}


def _union() -> tuple[Column, ...]:
    out: dict[str, Column] = {"record": RECORD}
    for cols in COLUMNS.values():
        for col in cols:
            out.setdefault(col.key, col)
    return tuple(out.values())


CSV_COLUMNS = _union()
BY_KEY = {c.key: c for c in CSV_COLUMNS}

KIND_NAMES = {
    "发明专利": "invention_patent",
    "发明": "invention_patent",
    "实用新型": "utility_model",
    "外观设计": "design_patent",
    "商标": "trademark",
    "著作权": "copyright",
    "作品著作权": "copyright",
    "软件著作权": "software_copyright",
    "计算机软件著作权": "software_copyright",
    "集成电路布图设计": "ic_layout",
    "布图设计": "ic_layout",
    "地理标志": "geographical_indication",
}
STATUS_NAMES = {
    "申请中": "pending",
    "审查中": "pending",
    "已授权": "granted",
    "授权": "granted",
    "已注册": "registered",
    "注册": "registered",
    "失效": "lapsed",
    "期满": "expired",
    "届满": "expired",
    "无效": "invalidated",
    "已无效": "invalidated",
    "撤销": "revoked",
    "已撤销": "revoked",
}
RECORD_NAMES: dict[str, RecordType] = {
    "asset": "asset",
    "assets": "asset",
    "资产": "asset",
    "claim": "claim",
    "claims": "claim",
    "债权": "claim",
    "pledge": "pledge",
    "pledges": "pledge",
    "质押": "pledge",
}
SHEET_NAMES: dict[str, RecordType] = {
    "assets": "asset",
    "asset": "asset",
    "资产": "asset",
    "claims": "claim",
    "claim": "claim",
    "债权": "claim",
    "pledges": "pledge",
    "pledge": "pledge",
    "质押": "pledge",
}
ENUM_NAMES: dict[str, dict[str, str]] = {"kind": KIND_NAMES, "legal_status": STATUS_NAMES}
TRUE_WORDS = frozenset({"yes", "y", "true", "t", "1", "是", "有", "√"})
FALSE_WORDS = frozenset({"no", "n", "false", "f", "0", "否", "无", "×"})


def _norm(text: str) -> str:
    """A header or sheet name as compared: NFKC (full-width → ASCII), trimmed, lower case."""
    text = unicodedata.normalize("NFKC", text).strip().strip("\ufeff").strip().lower()
    return re.sub(r"[\s\-]+", "_", text)


HEADER_NAMES: dict[str, str] = {_norm(c.key): c.key for c in CSV_COLUMNS} | {
    _norm(c.zh): c.key for c in CSV_COLUMNS
}


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the file. ``row`` is None for the file as a whole; 1 is the header."""

    sheet: str
    row: int | None
    column: str | None
    code: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "sheet": self.sheet,
            "row": self.row,
            "column": self.column,
            "code": self.code,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class AssetRow:
    sheet: str
    row: int
    data: AssetIn

    @property
    def key(self) -> AssetKey:
        return (self.data.kind, self.data.registration_no)


@dataclass(frozen=True, slots=True)
class ClaimRow:
    """A claim; its pledges come from pledge rows (``data.pledges`` is always empty here)."""

    sheet: str
    row: int
    data: ClaimIn


@dataclass(frozen=True, slots=True)
class PledgeRow:
    """A pledge by natural keys; ``data.asset_id`` is a placeholder the service resolves."""

    sheet: str
    row: int
    loan_no: str
    kind: str
    registration_no: str
    data: PledgeIn

    @property
    def asset_key(self) -> AssetKey:
        return (self.kind, self.registration_no)

    @property
    def key(self) -> PledgeKey:
        return (self.loan_no, self.kind, self.registration_no)


@dataclass(slots=True)
class ParsedFile:
    format: str
    sha256: str
    size: int
    rows: int = 0
    assets: list[AssetRow] = field(default_factory=list)
    claims: list[ClaimRow] = field(default_factory=list)
    pledges: list[PledgeRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: natural keys written in the file, bad rows included (a pledge naming a bad asset row
    #: is not reported a second time as naming an unknown asset)
    asset_keys: dict[AssetKey, tuple[str, int]] = field(default_factory=dict)
    loan_nos: dict[str, tuple[str, int]] = field(default_factory=dict)
    pledge_keys: dict[PledgeKey, tuple[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def bad_rows(self) -> list[tuple[str, int]]:
        """(sheet, row) of every data row with at least one problem, in file order."""
        return sorted({(p.sheet, p.row) for p in self.problems if p.row is not None and p.row > 1})


class _Bad(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# --------------------------------------------------------------------------- cells


Cell = tuple[object, str | None]  # (value, number format: XLSX only)


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _show(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.15g}"
    return repr(value) if isinstance(value, str) else str(value)


def _text(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


_ZERO_FORMAT = re.compile(r"0{2,}")


def _id(value: object, number_format: str | None) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        whole = isinstance(value, int) or value.is_integer()
        if whole and 0 <= value < 10**15 and number_format and _ZERO_FORMAT.fullmatch(number_format):
            return str(int(value)).zfill(len(number_format))
        raise _Bad(
            "id_not_text",
            f"is a Number cell ({_show(value)}): Excel drops leading zeros and digits past the 15th "
            "from numbers, so it may not be what was typed; format the column as Text and enter "
            "the value again (or start it with an apostrophe ')",
        )
    raise _Bad("id_not_text", f"is not text ({_show(value)}); format the column as Text")


_DATE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T]0?0:00(?::00(?:\.0+)?)?)?")
_DATE_ZH = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日")


def _date(value: object) -> date:
    if isinstance(value, datetime):
        if value.time() != time():
            raise _Bad("bad_date", f"{value.isoformat(sep=' ')} has a time of day; give a date")
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        s = value.strip()
        m = _DATE.fullmatch(s) or _DATE_ZH.fullmatch(s)
        if m:
            try:
                return date(int(m[1]), int(m[2]), int(m[3]))
            except ValueError:
                raise _Bad("bad_date", f"{s!r} is not a real date") from None
        raise _Bad("bad_date", f"{s!r} is not a date; write YYYY-MM-DD, e.g. 2024-01-31")
    raise _Bad("bad_date", f"{_show(value)} is a number, not a date; write YYYY-MM-DD or use a date cell")


_DIGITS = re.compile(r"[0-9]+")
_NEGATIVE = re.compile(r"-\s*[0-9]+(?:\.[0-9]*)?")


def _integer(value: object, *, fen: bool) -> int:
    what = "a whole number of fen" if fen else "a whole number"
    if isinstance(value, bool):
        raise _Bad("not_integer", f"{_show(value)} is not {what}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not value.is_integer():
            raise _Bad("not_integer", f"{_show(value)} is not {what}")
        if abs(value) > 2**53:
            raise _Bad("too_large", f"{_show(value)} is too large for an exact Number cell; enter it as text")
        number = int(value)
    elif isinstance(value, str):
        s = value.strip()
        if _DIGITS.fullmatch(s):
            if len(s) > 25:
                raise _Bad("too_large", f"{s} is too large")
            number = int(s)
        elif _NEGATIVE.fullmatch(s):
            raise _Bad("negative", f"{s} is negative")
        else:
            raise _Bad(
                "not_integer",
                f"{s!r} is not {what}: digits only (no decimals, exponents, separators or currency signs)",
            )
    else:
        raise _Bad("not_integer", f"{_show(value)} is not {what}")
    if number < 0:
        raise _Bad("negative", f"{number} is negative")
    if fen and number > FEN_MAX:
        raise _Bad("too_large", f"{number} is more than {FEN_MAX} fen")
    return number


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    word = _text(value).lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise _Bad("invalid", f"{_show(value)} is not yes or no")


_LIST_SEP = re.compile(r"[;；,，、\n]")


def _list(value: object, number_format: str | None, *, ids: bool) -> list[str]:
    text = _id(value, number_format) if ids else _text(value)
    return [item.strip() for item in _LIST_SEP.split(text) if item.strip()]


def _co_owners(value: object) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in re.split(r"[;；\n]", _text(value)):
        item = item.strip()
        if not item:
            continue
        name, sep, flag = item.rpartition("=")
        if sep and flag.strip().lower() in TRUE_WORDS | FALSE_WORDS:
            out.append({"name": name.strip(), "consented": flag.strip().lower() in TRUE_WORDS})
        else:
            out.append({"name": item})
    return out


def _enum(value: object, key: str) -> str:
    word = _text(value)
    lowered = _norm(word)
    names = ENUM_NAMES.get(key, {})
    return names.get(word) or names.get(unicodedata.normalize("NFKC", word).strip()) or lowered


def convert(column: Column, value: object, number_format: str | None = None) -> Any:
    """The value of one non-empty cell for the input model, or ``_Bad``."""
    match column.type:
        case "text":
            return _text(value)
        case "id":
            return _id(value, number_format)
        case "ids":
            return _list(value, number_format, ids=True)
        case "list":
            return _list(value, number_format, ids=False)
        case "enum":
            return _enum(value, column.key)
        case "date":
            return _date(value)
        case "fen":
            return _integer(value, fen=True)
        case "int":
            return _integer(value, fen=False)
        case "bool":
            return _bool(value)
        case "co_owners":
            return _co_owners(value)
    raise AssertionError(column.type)


# --------------------------------------------------------------------------- models


LoanNo = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class _PledgeKeyIn(BaseModel):
    """The natural keys of a pledge row, with the same types as ``ClaimIn``/``AssetIn``."""

    model_config = ConfigDict(extra="forbid", strict=True)
    loan_no: LoanNo
    kind: Kind
    registration_no: RegNo


PLACEHOLDER_ASSET_ID = 1

#: every ``Problem.code`` (the page translates them as ``import.problem.<code>``)
PROBLEM_CODES = (
    "unreadable",
    "too_large",
    "too_many_rows",
    "no_rows",
    "no_sheets",
    "unknown_column",
    "duplicate_column",
    "missing_column",
    "no_header",
    "required",
    "invalid",
    "invalid_choice",
    "too_small",
    "too_long",
    "not_integer",
    "negative",
    "bad_date",
    "id_not_text",
    "not_applicable",
    "duplicate",
    "in_future",
    "unknown_claim",
    "unknown_asset",
    "asset_listed",
    "claim_not_open",
)

_PYDANTIC_CODES = {
    "missing": "required",
    "less_than_equal": "too_large",
    "greater_than_equal": "too_small",
    "literal_error": "invalid_choice",
    "string_too_long": "too_long",
    "string_too_short": "required",
}
_BORROWER = {"name": "borrower_name", "credit_code": "borrower_credit_code"}


def _column_of(record: RecordType, loc: tuple[int | str, ...]) -> str:
    if record == "claim" and loc[:1] == ("borrower",):
        return _BORROWER.get(str(loc[1]) if len(loc) > 1 else "name", "borrower_name")
    if record == "pledge" and loc[:1] == ("registration_no",):
        return "pledge_registration_no"
    if not loc:
        return "title" if record == "asset" else "record"
    return str(loc[0])


def _reason(error: Any, column: str) -> str:
    if error["type"] in ("missing", "string_too_short"):
        return "is required"
    if error["type"] == "string_pattern_mismatch" and column.endswith("credit_code"):
        return "is not an 18-character unified social credit code (digits and capital letters)"
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ")


def _model_problems(record: RecordType, exc: ValidationError) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str]] = set()
    for error in exc.errors():
        column = _column_of(record, tuple(error["loc"]))
        code = _PYDANTIC_CODES.get(error["type"], "invalid")
        if (column, code) in seen:
            continue
        seen.add((column, code))
        out.append((column, code, _reason(error, column)))
    return out


def _asset_input(values: dict[str, Any]) -> dict[str, Any]:
    return dict(values)


def _claim_input(values: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in values.items() if k not in ("borrower_name", "borrower_credit_code")}
    borrower = {}
    if "borrower_name" in values:
        borrower["name"] = values["borrower_name"]
    if "borrower_credit_code" in values:
        borrower["credit_code"] = values["borrower_credit_code"]
    data["borrower"] = borrower
    return data


def _pledge_input(values: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {"asset_id": PLACEHOLDER_ASSET_ID}
    for src, dst in (("rank", "rank"), ("pledge_registration_no", "registration_no")):
        if src in values:
            data[dst] = values[src]
    if "registered_on" in values:
        data["registered_on"] = values["registered_on"]
    return data


# --------------------------------------------------------------------------- tables


@dataclass(slots=True)
class _Table:
    sheet: str
    fixed: RecordType | None
    header_row: int = 0
    columns: dict[int, str] = field(default_factory=dict)  # position -> key
    shown: dict[str, str] = field(default_factory=dict)  # key -> header as written
    blank_columns: set[int] = field(default_factory=set)
    width: int = 0
    skip: set[RecordType] = field(default_factory=set)
    checked: set[RecordType] = field(default_factory=set)

    def name(self, key: str) -> str:
        return self.shown.get(key, key)


class _TooManyRows(Exception):
    pass


class _Reader:
    def __init__(self, parsed: ParsedFile, today: date, progress: Progress | None) -> None:
        self.parsed = parsed
        self.today = today
        self.progress = progress

    def problem(self, sheet: str, row: int | None, column: str | None, code: str, reason: str) -> None:
        self.parsed.problems.append(Problem(sheet, row, column, code, reason))

    # header --------------------------------------------------------------

    def header(self, table: _Table, row_no: int, cells: Sequence[Cell]) -> bool:
        table.header_row = row_no
        table.width = len(cells)
        for pos, (value, _fmt) in enumerate(cells):
            if _blank(value):
                table.blank_columns.add(pos)
                continue
            written = _text(value)
            key = HEADER_NAMES.get(_norm(written))
            if key is None:
                self.problem(table.sheet, row_no, written, "unknown_column", "is not a column of the layout")
                continue
            allowed = KEYS[table.fixed] if table.fixed else frozenset(BY_KEY)
            if key not in allowed:
                self.problem(
                    table.sheet,
                    row_no,
                    written,
                    "unknown_column",
                    f"is not a column of the {table.sheet} sheet",
                )
                continue
            if key in table.shown:
                self.problem(table.sheet, row_no, written, "duplicate_column", "appears twice in the header")
                continue
            table.columns[pos] = key
            table.shown[key] = written
        if table.fixed is None and "record" not in table.shown:
            self.problem(
                table.sheet,
                row_no,
                "record",
                "missing_column",
                "is missing: a CSV file needs a record column (asset, claim or pledge)",
            )
            return False
        return True

    def check_required(self, table: _Table, record: RecordType) -> bool:
        if record in table.checked:
            return record not in table.skip
        table.checked.add(record)
        for col in COLUMNS[record]:
            if col.required and col.key not in table.shown:
                self.problem(
                    table.sheet,
                    table.header_row,
                    col.key,
                    "missing_column",
                    f"is missing: {record} rows need it",
                )
                table.skip.add(record)
        return record not in table.skip

    # rows ----------------------------------------------------------------

    def read(self, table: _Table, rows: Iterable[tuple[int, Sequence[Cell]]]) -> None:
        started = False
        for row_no, cells in rows:
            if all(_blank(v) for v, _ in cells):
                continue
            if not started:
                started = True
                if not self.header(table, row_no, cells):
                    return
                continue
            self.parsed.rows += 1
            if self.parsed.rows > MAX_ROWS:
                self.problem(
                    table.sheet, row_no, None, "too_many_rows", f"a file holds at most {MAX_ROWS} rows"
                )
                raise _TooManyRows
            if self.progress and self.parsed.rows % 250 == 0:
                self.progress(self.parsed.rows)
            self.row(table, row_no, cells)

    def row(self, table: _Table, row_no: int, cells: Sequence[Cell]) -> None:
        raw: dict[str, Cell] = {}
        for pos, cell in enumerate(cells):
            if _blank(cell[0]):
                continue
            key = table.columns.get(pos)
            if key is not None:
                raw[key] = cell
            elif pos in table.blank_columns or pos >= table.width:
                self.problem(
                    table.sheet,
                    row_no,
                    f"#{pos + 1}",
                    "no_header",
                    "holds a value in a column without a header",
                )
        record = table.fixed or self.record_type(table, row_no, raw)
        if record is None or not self.check_required(table, record):
            return
        bad: list[tuple[str, str, str]] = []
        values: dict[str, Any] = {}
        for key, (value, fmt) in raw.items():
            if key == "record":
                continue
            if key not in KEYS[record]:
                bad.append((key, "not_applicable", f"does not apply to {record} rows; leave it empty"))
                continue
            try:
                values[key] = convert(BY_KEY[key], value, fmt)
            except _Bad as exc:
                bad.append((key, exc.code, exc.reason))
        bad += self.validate(table, row_no, record, values, failed={b[0] for b in bad})
        for column, code, reason in bad:
            self.problem(table.sheet, row_no, table.name(column), code, reason)

    def record_type(self, table: _Table, row_no: int, raw: dict[str, Cell]) -> RecordType | None:
        cell = raw.get("record")
        if cell is None:
            self.problem(table.sheet, row_no, table.name("record"), "required", "is required")
            return None
        word = _text(cell[0])
        record = RECORD_NAMES.get(_norm(word)) or RECORD_NAMES.get(word.strip())
        if record is None:
            self.problem(
                table.sheet,
                row_no,
                table.name("record"),
                "invalid_choice",
                f"{word!r} is not asset, claim or pledge",
            )
        return record

    # validation ------------------------------------------------------------

    def validate(
        self, table: _Table, row_no: int, record: RecordType, values: dict[str, Any], failed: set[str]
    ) -> list[tuple[str, str, str]]:
        where = (table.sheet, row_no)
        if record == "asset":
            return self.asset(where, values, failed)
        if record == "claim":
            return self.claim(where, values, failed)
        return self.pledge(where, values, failed)

    def _validate(
        self, record: RecordType, model: type[BaseModel], data: dict[str, Any], failed: set[str]
    ) -> tuple[Any, list[tuple[str, str, str]]]:
        try:
            return model.model_validate(data), []
        except ValidationError as exc:
            # a cell that could not be read is already reported; don't add "is required" for it
            return None, [p for p in _model_problems(record, exc) if p[0] not in failed]

    def _duplicate(
        self, seen: dict[Any, tuple[str, int]], key: Any, where: tuple[str, int], what: str, column: str
    ) -> list[tuple[str, str, str]]:
        first = seen.get(key)
        if first is None:
            seen[key] = where
            return []
        sheet, row = first
        at = f"row {row}" if sheet == where[0] else f"{sheet} row {row}"
        return [(column, "duplicate", f"the same {what} as {at}")]

    def asset(
        self, where: tuple[str, int], values: dict[str, Any], failed: set[str]
    ) -> list[tuple[str, str, str]]:
        data, bad = self._validate("asset", AssetIn, _asset_input(values), failed)
        key = _asset_key(values)
        if key is not None:
            bad += self._duplicate(
                self.parsed.asset_keys, key, where, "kind and registration_no", "registration_no"
            )
        if data is not None and not bad and not failed:
            self.parsed.assets.append(AssetRow(where[0], where[1], data))
        return bad

    def claim(
        self, where: tuple[str, int], values: dict[str, Any], failed: set[str]
    ) -> list[tuple[str, str, str]]:
        data, bad = self._validate("claim", ClaimIn, _claim_input(values), failed)
        loan_no = values.get("loan_no")
        if isinstance(loan_no, str) and loan_no:
            bad += self._duplicate(self.parsed.loan_nos, loan_no, where, "loan_no", "loan_no")
        if data is not None and not bad and not failed:
            self.parsed.claims.append(ClaimRow(where[0], where[1], data))
        return bad

    def pledge(
        self, where: tuple[str, int], values: dict[str, Any], failed: set[str]
    ) -> list[tuple[str, str, str]]:
        keys, bad = self._validate(
            "pledge",
            _PledgeKeyIn,
            {k: values[k] for k in ("loan_no", "kind", "registration_no") if k in values},
            failed,
        )
        data, more = self._validate("pledge", PledgeIn, _pledge_input(values), failed)
        bad += more
        if data is not None and data.registered_on is not None and data.registered_on > self.today:
            bad.append(("registered_on", "in_future", f"{data.registered_on} is in the future"))
        if keys is not None:
            key = (keys.loan_no, keys.kind, keys.registration_no)
            bad += self._duplicate(
                self.parsed.pledge_keys, key, where, "loan_no, kind and registration_no", "registration_no"
            )
        if keys is not None and data is not None and not bad and not failed:
            self.parsed.pledges.append(
                PledgeRow(where[0], where[1], keys.loan_no, keys.kind, keys.registration_no, data)
            )
        return bad


def _asset_key(values: dict[str, Any]) -> AssetKey | None:
    kind, reg = values.get("kind"), values.get("registration_no")
    if isinstance(kind, str) and kind in KIND_CODES and isinstance(reg, str) and reg:
        return (kind, reg)
    return None


KIND_CODES = frozenset(KIND_NAMES.values())


# --------------------------------------------------------------------------- files


def detect_format(data: bytes) -> str:
    """``xlsx``, ``xls`` (refused) or ``csv``, from the content (not the name)."""
    if data[:4] == b"PK\x03\x04":
        return "xlsx"
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        return "xls"
    return "csv"


def decode_csv(data: bytes) -> str:
    """UTF-8 (BOM or not), UTF-16 with BOM, else GB18030. Raises ``UnicodeDecodeError``."""
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :].decode("utf-8")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("gb18030")


def _delimiter(text: str) -> str:
    first = text.split("\n", 1)[0]
    counts = {d: first.count(d) for d in (",", "\t", ";")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _csv_rows(text: str) -> Iterator[tuple[int, list[Cell]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text), strict=False)
    for row_no, record in enumerate(reader, start=1):
        yield row_no, [(value, None) for value in record]


def _xlsx_rows(ws: Any) -> Iterator[tuple[int, list[Cell]]]:
    for row_no, cells in enumerate(ws.iter_rows(), start=1):
        yield row_no, [(c.value, getattr(c, "number_format", None)) for c in cells]


def _unpacked_size_ok(data: bytes) -> bool:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return sum(i.file_size for i in zf.infolist()) <= MAX_UNPACKED_BYTES


def parse(
    data: bytes,
    *,
    expect: str | None = None,
    today: date | None = None,
    progress: Progress | None = None,
) -> ParsedFile:
    """Read and validate a whole file; every problem of every row ends up in ``problems``.

    The content decides between CSV and XLSX; ``expect="xlsx"`` (a declared XLSX upload)
    reports a body that is not a workbook instead of reading it as CSV.
    """
    fmt = detect_format(data)
    if expect == "xlsx" and fmt == "csv":
        fmt = "xlsx"
    parsed = ParsedFile(format=fmt, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    reader = _Reader(parsed, today or clock.today_cst(), progress)
    if len(data) > MAX_FILE_BYTES:
        reader.problem("", None, None, "too_large", f"the file is larger than {MAX_FILE_BYTES} bytes")
        return parsed
    try:
        if fmt == "xls":
            reader.problem(
                "", None, None, "unreadable", "old .xls workbooks are not read; save as .xlsx or CSV"
            )
        elif fmt == "xlsx":
            _read_xlsx(reader, data)
        else:
            _read_csv(reader, data)
    except _TooManyRows:
        pass
    if not parsed.problems and parsed.rows == 0:
        reader.problem("", None, None, "no_rows", "the file has no rows to import")
    if progress:
        progress(parsed.rows)
    return parsed


def _read_csv(reader: _Reader, data: bytes) -> None:
    try:
        text = decode_csv(data)
    except UnicodeDecodeError:
        reader.problem("csv", None, None, "unreadable", "the file is neither UTF-8 nor GB18030 text")
        return
    table = _Table("csv", None)
    try:
        reader.read(table, _csv_rows(text))
    except csv.Error as exc:
        reader.problem("csv", None, None, "unreadable", f"not a readable CSV file: {exc}")


def _read_xlsx(reader: _Reader, data: bytes) -> None:
    from openpyxl import load_workbook

    try:
        if not _unpacked_size_ok(data):
            reader.problem("", None, None, "too_large", "the workbook unpacks to more than 400 MB")
            return
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # a damaged or foreign zip: report it, don't crash
        reader.problem("", None, None, "unreadable", f"not a readable XLSX workbook ({type(exc).__name__})")
        return
    try:
        found = False
        for ws in wb.worksheets:
            if not hasattr(ws, "iter_rows"):
                continue
            ws.reset_dimensions()  # some writers store wrong dimensions; read every row
            record = SHEET_NAMES.get(_norm(ws.title))
            if record is None and not _has_record_column(ws):
                continue  # the instructions, or anything else that is not data
            found = True
            try:
                reader.read(_Table(ws.title, record), _xlsx_rows(ws))
            except _TooManyRows:
                raise
            except Exception as exc:
                reader.problem(
                    ws.title, None, None, "unreadable", f"the sheet cannot be read ({type(exc).__name__})"
                )
        if not found:
            reader.problem(
                "", None, None, "no_sheets", "the workbook has no sheet named assets, claims or pledges"
            )
    finally:
        wb.close()


def _has_record_column(ws: Any) -> bool:
    for _row_no, cells in _xlsx_rows(ws):
        if all(_blank(v) for v, _ in cells):
            continue
        return any(not _blank(v) and HEADER_NAMES.get(_norm(_text(v))) == "record" for v, _ in cells)
    return False


# --------------------------------------------------------------------------- templates

EXAMPLE: dict[RecordType, dict[str, str]] = {
    "asset": {
        "kind": "trademark",
        "registration_no": "00123456",
        "title": "星河",
        "title_en": "Xinghe",
        "holder": "星河科技有限公司",
        "filed_on": "2018-03-02",
        "granted_on": "2019-08-07",
        "legal_status": "registered",
        "classes": "09;42",
        "appraisal_fen": "150000000",
        "appraised_on": "2024-01-15",
        "appraiser": "中和资产评估有限公司",
        "preservation_order": "no",
        "ownership_dispute": "no",
    },
    "claim": {
        "loan_no": "0020230001",
        "borrower_name": "星河科技有限公司",
        "borrower_credit_code": "91937399J7QBCW0TWL",
        "principal_fen": "500000000",
        "interest_fen": "1250000",
        "costs_fen": "0",
        "default_interest_fen": "0",
        "defaulted_on": "2024-03-31",
        "bucket_order": "costs;interest;principal",
    },
    "pledge": {
        "loan_no": "0020230001",
        "kind": "trademark",
        "registration_no": "00123456",
        "rank": "1",
        "pledge_registration_no": "0230000123",
        "registered_on": "2023-06-30",
    },
}

RULES: tuple[tuple[str, str], ...] = (
    (
        "Fill the sheets assets, claims and pledges (any may stay empty). Row 1 is the header: keep the "
        "column names (English, or the Chinese names below); the order of columns does not matter. "
        "Replace the example rows with your own.",
        "填写 assets（资产）、claims（债权）、pledges（质押）三个工作表（可留空）。第 1 行为表头：保留列名"
        "（英文或下表中的中文列名），列的顺序不限。请用您的数据替换示例行。",
    ),
    (
        "Ids are text: registration numbers, loan numbers, credit codes, pledge registration numbers, "
        "classes and pool codes keep their leading zeros only in Text cells (these columns are "
        "formatted as Text here). A Number cell in an id column is refused, unless it has a "
        "fixed-width zero format such as 000000; then the zero-padded figure shown is used.",
        "编号均为文本：登记号、贷款编号、信用代码、质押登记号、类别和资产包编号只有在“文本”格式的单元格中"
        "才能保留前导零（本模板中这些列已设为文本格式）。编号列中的“数值”单元格将被拒绝，除非其数字格式"
        "为 000000 这类定长补零格式，此时按显示的补零文本导入。",
    ),
    (
        "Amounts (*_fen) are whole numbers of fen (1 yuan = 100 fen): digits only, no decimals, "
        "exponents, thousands separators or currency signs; at most 9000000000000000.",
        "金额列（*_fen）以“分”为单位的整数（1 元 = 100 分）：只能是数字，不得含小数、科学计数、"
        "千位分隔符或货币符号；上限 9000000000000000。",
    ),
    (
        "Dates: 2024-01-31 (also 2024/01/31 or a date cell). Yes/no: yes/no, true/false, 1/0, 是/否. "
        "Lists (classes, bucket_order, co_owners): separate items with ';'. A co-owner who consented: "
        "name=yes.",
        "日期：2024-01-31（也可写 2024/01/31 或使用日期单元格）。是/否列：是/否、yes/no、true/false、1/0。"
        "列表（类别、清偿顺序、共有人）：各项以“;”分隔；已同意处置的共有人写作“名称=是”。",
    ),
    (
        "Natural keys: an asset is (kind, registration_no), a claim is loan_no, a pledge is "
        "(loan_no, kind, registration_no). A row whose key your bank already registered updates it. "
        "A claim with pledge rows in the file gets exactly those pledges; claims without pledge rows "
        "keep theirs. A pledge may name an asset in the file or one your bank already registered. "
        "Licences recorded on an asset are kept.",
        "唯一标识：资产为（资产类型，登记号），债权为贷款编号，质押为（贷款编号，资产类型，登记号）。"
        "本行已登记的记录将被更新而不会重复创建。文件中有质押行的债权，其质押以文件为准；"
        "没有质押行的债权保留原有质押。质押可引用本文件中的资产或本行已登记的资产。资产上已登记的许可不受影响。",
    ),
    (
        "Check the file with a dry run first: every bad row is listed with its sheet, row number, "
        "column and reason. Nothing is imported while any row is bad; the import is all or nothing.",
        "请先“试运行”检查：每一条有误的行都会列出工作表、行号、列和原因。只要有一行有误，就不会导入任何数据；"
        "导入要么全部成功，要么全部不生效。",
    ),
    (
        "CSV: one file whose first column is record (asset, claim or pledge), followed by all "
        "columns below; each row fills only its own columns. Save as UTF-8 (or GB18030).",
        "CSV：单个文件，第一列为 record（asset、claim 或 pledge），其后为下表所有列；每行只填写本类记录的列。"
        "请以 UTF-8（或 GB18030）编码保存。",
    ),
)


def _example_row(record: RecordType, columns: Sequence[Column]) -> list[str]:
    values = EXAMPLE[record]
    return [record if c.key == "record" else values.get(c.key, "") for c in columns]


def template_csv() -> bytes:
    """The CSV template: UTF-8 with BOM (Excel opens it as UTF-8), header and one example per type."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([c.key for c in CSV_COLUMNS])
    for record in RECORD_TYPES:
        writer.writerow(_example_row(record, CSV_COLUMNS))
    return codecs.BOM_UTF8 + out.getvalue().encode("utf-8")


def template_xlsx() -> bytes:
    """The XLSX template: instructions (Chinese and English), then assets, claims and pledges."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    info = wb.active
    assert info is not None
    info.title = "instructions"
    bold = Font(bold=True)
    info.append(["批量导入说明", "Bulk import instructions"])
    for cell in info[1]:
        cell.font = bold
    for en, zh in RULES:
        info.append([zh, en])
    info.append([])
    info.append(["工作表 Sheet", "列名 Column", "中文列名", "必填 Required", "说明", "Description"])
    for cell in info[info.max_row]:
        cell.font = bold
    for record in RECORD_TYPES:
        for col in COLUMNS[record]:
            info.append(
                [SHEETS[record], col.key, col.zh, "是 yes" if col.required else "", col.help_zh, col.help_en]
            )
    for letter, width in zip("ABCDEF", (60, 60, 18, 12, 50, 60), strict=True):
        info.column_dimensions[letter].width = width
    for row in info.iter_rows(min_row=2, max_row=len(RULES) + 1):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")

    for record in RECORD_TYPES:
        ws = wb.create_sheet(SHEETS[record])
        columns = COLUMNS[record]
        ws.append([c.key for c in columns])
        for cell in ws[1]:
            cell.font = bold
        ws.append(_example_row(record, columns))
        ws.freeze_panes = "A2"
        for pos, col in enumerate(columns, start=1):
            letter = get_column_letter(pos)
            ws.column_dimensions[letter].width = max(14, len(col.key) + 4)
            if col.type in ("id", "ids", "text", "enum", "list", "co_owners"):
                ws.column_dimensions[letter].number_format = "@"
                ws.cell(row=2, column=pos).number_format = "@"
            if col.type == "fen":
                value = ws.cell(row=2, column=pos).value
                if isinstance(value, str) and value:
                    ws.cell(row=2, column=pos).value = int(value)
            if col.type == "date":
                value = ws.cell(row=2, column=pos).value
                if isinstance(value, str) and value:
                    ws.cell(row=2, column=pos).value = date.fromisoformat(value)
                    ws.cell(row=2, column=pos).number_format = "yyyy-mm-dd"
            if col.type == "int":
                value = ws.cell(row=2, column=pos).value
                if isinstance(value, str) and value:
                    ws.cell(row=2, column=pos).value = int(value)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
