"""Writers for tabular reports: CSV, XLSX and PDF from the same tables.

A ``Report`` is a title, lines of notes and one or more ``Table``s (a title, notes, typed columns,
rows and an optional totals row). Amounts arrive as integer fen and never pass through a float:

- **CSV** (``to_csv``): UTF-8 with a BOM (Excel opens it as UTF-8), CRLF line ends, amounts
  written as integer fen. Any *text* cell that a spreadsheet would read as a formula (it starts
  with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) gets a leading apostrophe
  (OWASP "CSV injection"); numbers are written as numbers and never escaped.
- **XLSX** (``to_xlsx``): one sheet per table; amounts are numbers in CNY, exactly
  ``Decimal(fen) / 100``, formatted ``#,##0.00``; text that looks like a formula is stored as
  text, never as a formula.
- **PDF** (``to_pdf``): A4 landscape, fpdf2 with a CJK font found on the system (Noto Sans CJK
  SC from Debian's ``fonts-noto-cjk``; ``MARKET_PDF_FONT`` names another file), amounts as
  ``1,234.56``; a table per section with its totals row. Without such a font it fails with
  ``PdfFontMissing`` saying what to install.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from market.clock import CST
from market.money import format_cny

Cell = str | int | Decimal | date | datetime | None
Kind = Literal["text", "fen", "int", "date"]

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MIME = "text/csv; charset=utf-8"
PDF_MIME = "application/pdf"
MIME = {"csv": CSV_MIME, "xlsx": XLSX_MIME, "pdf": PDF_MIME}
FORMATS = tuple(MIME)


@dataclass(frozen=True, slots=True)
class Column:
    """A column: its heading, the kind of its cells, and its relative width in the PDF."""

    title: str
    kind: Kind = "text"
    width: float = 1.0


@dataclass(frozen=True, slots=True)
class Table:
    """One section of a report: a titled table with notes above it and an optional totals row."""

    title: str
    columns: Sequence[Column]
    rows: Sequence[Sequence[Cell]]
    totals: Sequence[Cell] | None = None
    notes: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        width = len(self.columns)
        for row in [*self.rows, *([self.totals] if self.totals is not None else [])]:
            if len(row) != width:
                raise ValueError(f"table {self.title!r}: a row has {len(row)} cells for {width} columns")


@dataclass(frozen=True, slots=True)
class Report:
    """A whole report: its title, lines of notes under it, and its tables."""

    title: str
    tables: Sequence[Table]
    notes: Sequence[str] = field(default_factory=tuple)


# --------------------------------------------------------------------------- cells


def _is_number(value: object) -> bool:
    return isinstance(value, int | Decimal) and not isinstance(value, bool)


def yuan(fen: int) -> Decimal:
    """Fen as an exact CNY amount with two decimals: ``123456`` -> ``Decimal("1234.56")``."""
    if not isinstance(fen, int) or isinstance(fen, bool):
        raise TypeError(f"amounts are integer fen, got {type(fen).__name__}")
    return (Decimal(fen) / 100).quantize(Decimal("0.01"))


def _moment(value: datetime) -> str:
    local = value.astimezone(CST) if value.tzinfo else value
    return local.strftime("%Y-%m-%d %H:%M:%S")


def _text(value: Cell) -> str:
    """A non-number cell as text (dates ISO, instants in China Standard Time)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return _moment(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def escape_formula(text: str) -> str:
    """``text`` made inert for spreadsheets: a leading apostrophe if it could start a formula."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def _csv_cell(value: Cell) -> str:
    if _is_number(value):
        return str(value)
    return escape_formula(_text(value))


def _titles(columns: Sequence[Column | str], suffix: str) -> list[str]:
    out = []
    for c in columns:
        col = c if isinstance(c, Column) else Column(c)
        out.append(col.title + (suffix if col.kind == "fen" else ""))
    return out


# --------------------------------------------------------------------------- CSV


def to_csv(columns: Sequence[Column | str], rows: Iterable[Sequence[Cell]], *, fen_suffix: str = "") -> bytes:
    """One table as CSV: BOM, header, rows; amounts as integer fen; formula-like text escaped.

    ``fen_suffix`` is appended to the heading of every amount column (e.g. ``" (fen)"``).
    """
    return codecs.BOM_UTF8 + _csv_text([(None, columns, rows, None)], fen_suffix).encode("utf-8")


def to_csv_tables(
    tables: Sequence[Table], *, fen_suffix: str = "", title: str | None = None, notes: Sequence[str] = ()
) -> bytes:
    """Several tables in one CSV: the report's title and notes, then each table with its title line,
    notes, header, rows and totals; a blank line between parts."""
    parts: list[_Part] = []
    if title is not None or notes:
        parts.append((title, [], [], notes))
    parts += [
        (t.title, t.columns, [*t.rows, *([t.totals] if t.totals is not None else [])], t.notes)
        for t in tables
    ]
    return codecs.BOM_UTF8 + _csv_text(parts, fen_suffix).encode("utf-8")


_Part = tuple[str | None, Sequence[Column | str], Iterable[Sequence[Cell]], Sequence[str] | None]


def _csv_text(parts: Sequence[_Part], fen_suffix: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    for n, (title, columns, rows, notes) in enumerate(parts):
        if n:
            writer.writerow([])
        if title is not None:
            writer.writerow([escape_formula(title)])
        for note in notes or ():
            writer.writerow([escape_formula(note)])
        if columns:
            writer.writerow([escape_formula(t) for t in _titles(columns, fen_suffix)])
        for row in rows:
            if len(row) != len(columns):
                raise ValueError(f"a row has {len(row)} cells for {len(columns)} columns")
            writer.writerow([_csv_cell(v) for v in row])
    return out.getvalue()


# --------------------------------------------------------------------------- XLSX

_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")


def _sheet_name(title: str, taken: set[str]) -> str:
    base = _SHEET_FORBIDDEN.sub(" ", title).strip().strip("'") or "Sheet"
    name, n = base[:31], 1
    while name.lower() in taken:
        n += 1
        tail = f" ({n})"
        name = base[: 31 - len(tail)] + tail
    taken.add(name.lower())
    return name


def to_xlsx(
    sheets: Sequence[Table], *, cny_suffix: str = "", title: str | None = None, notes: Sequence[str] = ()
) -> bytes:
    """One worksheet per table: title, notes, header, rows and totals; amounts in CNY as exact numbers.

    The report's own ``title`` and ``notes`` head the first sheet.
    """
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    def put(ws: Any, r: int, text: str, font: Any = None) -> None:
        cell = ws.cell(row=r, column=1)
        _put_text(cell, ILLEGAL_CHARACTERS_RE.sub("", text))
        if font is not None:
            cell.font = font

    bold = Font(bold=True)
    shade = PatternFill("solid", fgColor="DDE4EE")
    book = Workbook()
    first: Any = book.active
    taken: set[str] = set()
    for n, table in enumerate(sheets or [Table(title or "Report", [], [])]):
        ws: Any = first if n == 0 else book.create_sheet()
        ws.title = _sheet_name(table.title, taken)
        r = 1
        if n == 0 and (title is not None or notes):
            if title is not None:
                put(ws, r, title, Font(bold=True, size=14))
                r += 1
            for note in notes:
                put(ws, r, note)
                r += 1
            r += 1
        put(ws, r, table.title, Font(bold=True, size=12))
        for note in table.notes:
            r += 1
            put(ws, r, note)
        r += 2
        header = r
        for j, heading in enumerate(_titles(table.columns, cny_suffix), 1):
            cell = ws.cell(row=r, column=j)
            _put_text(cell, ILLEGAL_CHARACTERS_RE.sub("", heading))
            cell.font, cell.fill = bold, shade
            cell.alignment = Alignment(wrap_text=True, vertical="top")
        for row in table.rows:
            r += 1
            _xlsx_row(ws, r, table.columns, row, ILLEGAL_CHARACTERS_RE)
        if table.totals is not None:
            r += 1
            _xlsx_row(ws, r, table.columns, table.totals, ILLEGAL_CHARACTERS_RE)
            for j in range(1, len(table.columns) + 1):
                ws.cell(row=r, column=j).font = bold
                ws.cell(row=r, column=j).fill = shade
        if table.columns:
            ws.freeze_panes = ws.cell(row=header + 1, column=1)
        for j, col in enumerate(table.columns, 1):
            ws.column_dimensions[get_column_letter(j)].width = _xlsx_width(col, table, j - 1)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _put_text(cell: Any, text: str) -> None:
    """Store ``text`` as a string even when it starts with ``=`` (openpyxl would make it a formula)."""
    cell.value = text
    cell.data_type = "s"


def _xlsx_row(
    ws: Any, r: int, columns: Sequence[Column], row: Sequence[Cell], illegal: re.Pattern[str]
) -> None:
    for j, (col, value) in enumerate(zip(columns, row, strict=True), 1):
        cell = ws.cell(row=r, column=j)
        if value is None:
            continue
        if col.kind == "fen" and isinstance(value, int) and not isinstance(value, bool):
            cell.value = yuan(value)
            cell.number_format = "#,##0.00"
        elif _is_number(value):
            cell.value = value
            cell.number_format = "0"
        elif isinstance(value, date) and not isinstance(value, datetime):
            cell.value = value
            cell.number_format = "yyyy-mm-dd"
        else:
            _put_text(cell, illegal.sub("", _text(value)))


def _xlsx_width(col: Column, table: Table, j: int) -> float:
    longest = max([_display_len(col.title)] + [_display_len(_text(r[j])) for r in table.rows[:500]])
    if col.kind == "fen":
        longest = max(longest, 16)
    return float(min(max(longest + 2, 8), 60))


def _display_len(text: str) -> int:
    """Width in Latin characters: a CJK character counts as two."""
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)


# --------------------------------------------------------------------------- PDF

FONT_ENV = "MARKET_PDF_FONT"
FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts")
#: Preferred font files, best first (simplified Chinese faces).
FONT_NAMES = (
    "NotoSansCJK-Regular.ttc",
    "NotoSansCJKsc-Regular.otf",
    "NotoSansSC-Regular.otf",
    "NotoSansSC-Regular.ttf",
    "NotoSerifCJK-Regular.ttc",
    "SourceHanSansSC-Regular.otf",
    "wqy-microhei.ttc",
    "wqy-zenhei.ttc",
    "DroidSansFallbackFull.ttf",
)
INSTALL_HINT = (
    "install Debian's fonts-noto-cjk (apt-get install fonts-noto-cjk) "
    f"or set {FONT_ENV} to a .ttf/.otf/.ttc font file with Chinese glyphs"
)


class PdfFontMissing(RuntimeError):
    """No font with Chinese glyphs was found for PDF exports (an installation problem, not a user error)."""


@dataclass(frozen=True, slots=True)
class FontChoice:
    path: Path
    index: int  # face number inside a .ttc collection
    name: str


def find_cjk_font() -> FontChoice:
    """The font PDF exports use: ``MARKET_PDF_FONT`` if set, else the first known CJK font installed.

    Raises:
        PdfFontMissing: ``MARKET_PDF_FONT`` names no readable file, or no CJK font is installed.
    """
    explicit = os.environ.get(FONT_ENV)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise PdfFontMissing(f"{FONT_ENV}={explicit} is not a font file; {INSTALL_HINT}")
        return _choose_face(path)
    for name in FONT_NAMES:
        for root in FONT_DIRS:
            if not root.is_dir():
                continue
            direct = [p for p in (root / "opentype" / "noto" / name, root / "truetype" / name) if p.is_file()]
            for path in direct or sorted(root.rglob(name)):
                if path.is_file():
                    return _choose_face(path)
    searched = ", ".join(str(d) for d in FONT_DIRS)
    raise PdfFontMissing(f"No font with Chinese glyphs found under {searched}: {INSTALL_HINT}")


def _choose_face(path: Path) -> FontChoice:
    """For a collection, the simplified-Chinese face (``… SC``), else its first face."""
    if path.suffix.lower() != ".ttc":
        return FontChoice(path, 0, path.stem)
    from fontTools.ttLib import TTCollection

    try:
        collection = TTCollection(str(path), lazy=True)
    except Exception as exc:  # a damaged or unreadable file
        raise PdfFontMissing(f"Cannot read the font {path}: {exc}; {INSTALL_HINT}") from exc
    try:
        names = [str(f["name"].getDebugName(1) or "") for f in collection.fonts]
    finally:
        collection.close()
    for i, name in enumerate(names):
        if name.endswith(" SC") and "Mono" not in name:
            return FontChoice(path, i, name)
    return FontChoice(path, 0, names[0] if names else path.stem)


def to_pdf(
    title: str,
    sections: Sequence[Table],
    *,
    cny_suffix: str = "",
    footer: str = "",
    notes: Sequence[str] = (),
) -> bytes:
    """A4 landscape: the title and ``notes``, then each section's title, notes and table (header and
    totals shaded).

    Every page ends with ``footer`` and its page number. Amount columns read ``1,234.56``.

    Raises:
        PdfFontMissing: no CJK font is installed (see ``find_cjk_font``).
    """
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    font = find_cjk_font()

    class Document(FPDF):
        def footer(self) -> None:
            self.set_y(-10)
            self.set_font("cjk", size=7)
            self.cell(0, 5, f"{footer}   {self.page_no()}/{{nb}}".strip(), align="R")

    pdf = Document(orientation="L", unit="mm", format="A4")
    pdf.set_title(title)
    pdf.set_creator("ip-disposal-market")
    pdf.set_auto_page_break(auto=True, margin=14)
    try:
        pdf.add_font("cjk", "", str(font.path), collection_font_number=font.index)
    except Exception as exc:  # fontTools cannot parse it
        raise PdfFontMissing(f"Cannot load the font {font.path}: {exc}; {INSTALL_HINT}") from exc
    pdf.alias_nb_pages()
    pdf.add_page()
    pdf.set_font("cjk", size=14)
    pdf.multi_cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", size=8.5)
    for note in notes:
        pdf.multi_cell(0, 4.8, note, new_x="LMARGIN", new_y="NEXT")
    shade = FontFace(emphasis="", fill_color=(221, 228, 238))
    for section in sections:
        _pdf_section(pdf, section, shade, cny_suffix)
    return bytes(pdf.output())


def _pdf_section(pdf: Any, section: Table, shade: Any, cny_suffix: str) -> None:
    pdf.ln(3)
    pdf.set_font("cjk", size=11)
    pdf.multi_cell(0, 6, section.title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", size=8)
    for note in section.notes:
        pdf.multi_cell(0, 4.5, note, new_x="LMARGIN", new_y="NEXT")
    if not section.columns:
        return
    pdf.ln(1)
    pdf.set_font("cjk", size=7 if len(section.columns) > 9 else 8)
    with pdf.table(
        col_widths=tuple(c.width for c in section.columns),
        text_align=tuple("RIGHT" if c.kind in ("fen", "int") else "LEFT" for c in section.columns),
        headings_style=shade,
        line_height=pdf.font_size * 1.7,
        padding=0.8,
        repeat_headings=1,
    ) as table:
        table.row(_titles(section.columns, cny_suffix))
        for row in section.rows:
            table.row([_pdf_cell(c, v) for c, v in zip(section.columns, row, strict=True)])
        if section.totals is not None:
            cells = [_pdf_cell(c, v) for c, v in zip(section.columns, section.totals, strict=True)]
            table.row(cells, style=shade)


def _pdf_cell(col: Column, value: Cell) -> str:
    if col.kind == "fen" and isinstance(value, int) and not isinstance(value, bool):
        return format_cny(value)
    if _is_number(value):
        return str(value)
    return _text(value)
