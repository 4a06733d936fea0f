"""CSV, XLSX and PDF writers: encodings, formula escaping, exact amounts, the CJK font."""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from hypothesis import given, strategies as st

from market import exports
from market.exports import Column, Table

COLUMNS = [Column("名称 Title", width=3), Column("金额 Amount", "fen", 2), Column("笔数 Count", "int")]
BIG = 1_234_567_890_123  # ≈ 1.2 × 10¹² fen: far beyond what a float keeps exactly after ÷100 arithmetic
ROWS = [
    ['=HYPERLINK("http://evil","x")', 123_456, 1],
    ["+cmd|' /C calc'!A0", -5, -2],
    ["-2+3", BIG, 0],
    ["@SUM(A1:A2)", 1, 3],
    ["\tTAB", 0, 4],
    ["\rCR", 10, 5],
    ["锂电池正极材料专利", 99, 6],
]


def _csv_rows(data: bytes) -> list[list[str]]:
    assert data.startswith(codecs.BOM_UTF8)
    return list(csv.reader(io.StringIO(data[len(codecs.BOM_UTF8) :].decode("utf-8"), newline="")))


def test_csv_has_bom_crlf_and_header() -> None:
    data = exports.to_csv(COLUMNS, ROWS, fen_suffix="（分）")
    assert data.startswith(codecs.BOM_UTF8)
    text = data[3:].decode("utf-8")
    assert text.startswith("名称 Title,金额 Amount（分）,笔数 Count\r\n")
    assert text.count("\r\n") >= len(ROWS) + 1
    assert "\n" not in text.replace("\r\n", "").replace("\rCR", "")


def test_csv_escapes_every_formula_trigger_but_not_numbers() -> None:
    rows = _csv_rows(exports.to_csv(COLUMNS, ROWS))[1:]
    for original, row in zip(ROWS, rows, strict=True):
        title = str(original[0])
        assert row[0] == ("'" + title if title[0] in "=+-@\t\r" else title)
        assert row[1] == str(original[1]) and row[2] == str(original[2])  # -5 stays a number
    assert rows[2][1] == str(BIG)


def test_csv_leaves_decimals_and_dates_as_they_are() -> None:
    data = exports.to_csv(["a", "b", "c"], [[Decimal("-1.50"), date(2026, 10, 1), None]])
    assert _csv_rows(data)[1] == ["-1.50", "2026-10-01", ""]


@given(st.text(max_size=30))
def test_csv_text_round_trips_with_at_most_an_apostrophe(value: str) -> None:
    cell = _csv_rows(exports.to_csv(["x"], [[value]]))[1]
    got = cell[0] if cell else ""
    if value.startswith(exports.FORMULA_TRIGGERS):
        assert got == "'" + value
    else:
        assert got == value


def test_csv_tables_keep_each_section() -> None:
    t1 = Table("第一部分", COLUMNS, ROWS[:2], totals=["合计", 123_451, -1], notes=["=note"])
    t2 = Table("Second", [Column("x")], [["y"]])
    rows = _csv_rows(exports.to_csv_tables([t1, t2]))
    assert rows[0] == ["第一部分"] and rows[1] == ["'=note"]
    assert ["合计", "123451", "-1"] in rows
    assert rows[rows.index([]) + 1] == ["Second"]


def test_rows_must_match_the_columns() -> None:
    with pytest.raises(ValueError):
        Table("t", COLUMNS, [["only one"]])
    with pytest.raises(ValueError):
        exports.to_csv(COLUMNS, [["a", 1]])


def test_yuan_is_exact_and_refuses_floats() -> None:
    assert exports.yuan(BIG) == Decimal("12345678901.23")
    assert exports.yuan(-5) == Decimal("-0.05")
    assert exports.yuan(0) == Decimal("0.00")
    with pytest.raises(TypeError):
        exports.yuan(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        exports.yuan(True)


def test_xlsx_reopens_with_exact_amounts_and_text_never_a_formula() -> None:
    totals = ["合计", sum(int(r[1]) for r in ROWS), sum(int(r[2]) for r in ROWS)]
    table = Table("处置报表/2026:Q4", COLUMNS, ROWS, totals=totals, notes=["期间：2026-10-01 至 2026-12-31"])
    data = exports.to_xlsx([table, Table("处置报表/2026:Q4", COLUMNS, [])], cny_suffix="（元）")
    book = openpyxl.load_workbook(io.BytesIO(data))
    assert [ws.title for ws in book.worksheets] == ["处置报表 2026 Q4", "处置报表 2026 Q4 (2)"]
    ws = book.worksheets[0]
    values = list(ws.iter_rows(values_only=True))
    assert values[0][0] == "处置报表/2026:Q4" and values[1][0] == "期间：2026-10-01 至 2026-12-31"
    header = values.index(("名称 Title", "金额 Amount（元）", "笔数 Count"))
    body = values[header + 1 :]
    for original, got in zip([*ROWS, totals], body, strict=True):
        assert got[0] == str(original[0]).replace("\r", "\n")  # kept as text (XML reads CR as LF)
        assert Decimal(str(got[1])) == Decimal(int(original[1])) / 100  # type: ignore[call-overload]
        assert got[2] == original[2]
    for row in ws.iter_rows():
        for cell in row:
            assert cell.data_type != "f", cell.coordinate
    assert ws.cell(row=header + 2, column=2).number_format == "#,##0.00"
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    assert "<v>12345678901.23</v>" in sheet and "<v>-0.05</v>" in sheet  # exact decimal text, no float noise
    assert "<f>" not in sheet


def test_xlsx_writes_dates_and_instants() -> None:
    moment = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)  # 2026-12-01 00:00 in China
    data = exports.to_xlsx([Table("t", [Column("d"), Column("m")], [[date(2026, 1, 2), moment]])])
    ws = openpyxl.load_workbook(io.BytesIO(data)).worksheets[0]
    row = list(ws.iter_rows(values_only=True))[-1]
    assert row[0] == datetime(2026, 1, 2) and row[1] == "2026-12-01 00:00:00"


def test_pdf_embeds_the_cjk_font() -> None:
    font = exports.find_cjk_font()  # scripts/test installs Debian's fonts-noto-cjk
    table = Table("处置明细", COLUMNS, ROWS, totals=["合计", 1, 2], notes=["期间：2026 年第四季度"])
    data = exports.to_pdf("知识产权质押处置报表", [table, table], cny_suffix="（元）", footer="第 1 版")
    assert data.startswith(b"%PDF-")
    names = set(re.findall(rb"/BaseFont\s*/([^\s/<>\[\]]+)", data))
    assert names, "no embedded font"
    assert all(b"+" in n for n in names)  # subset, embedded
    if font.path.name.startswith("NotoSansCJK"):
        assert any(b"NotoSansCJKSC" in n for n in names), names
    assert b"/FontFile" in data  # the glyphs are in the file, not left to the reader


def test_pdf_many_rows_span_pages() -> None:
    rows = [[f"标的 {i}", i * 100, i] for i in range(120)]
    data = exports.to_pdf("多页", [Table("明细", COLUMNS, rows)])
    assert len(re.findall(rb"/Type\s*/Page\b", data)) >= 2


def test_missing_font_fails_with_a_clear_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(exports.FONT_ENV, str(tmp_path / "nope.ttf"))
    with pytest.raises(exports.PdfFontMissing, match="fonts-noto-cjk"):
        exports.to_pdf("t", [])
    monkeypatch.delenv(exports.FONT_ENV)
    monkeypatch.setattr(exports, "FONT_DIRS", (tmp_path,))
    with pytest.raises(exports.PdfFontMissing, match="fonts-noto-cjk"):
        exports.find_cjk_font()


def test_a_named_font_file_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    font = exports.find_cjk_font()
    monkeypatch.setenv(exports.FONT_ENV, str(font.path))
    assert exports.find_cjk_font() == font
