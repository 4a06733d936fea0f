"""Bulk import, pure half: reading CSV/XLSX into validated rows and reporting every bad row."""

from __future__ import annotations

import codecs
import csv
import io
from datetime import date
from typing import Any

import openpyxl
import pytest

from listings import importer
from listings.importer import CSV_COLUMNS, PROBLEM_CODES, ParsedFile, parse
from web import i18n

TODAY = date(2025, 6, 1)
CREDIT = "91937399J7QBCW0TWL"


def asset_row(reg: str = "00123", **over: str) -> dict[str, str]:
    return {
        "record": "asset",
        "kind": "trademark",
        "registration_no": reg,
        "title": "星河",
        "holder": "星河科技有限公司",
        "legal_status": "registered",
        "granted_on": "2019-08-07",
        "classes": "09;42",
        "appraisal_fen": "150000000",
        **over,
    }


def claim_row(loan: str = "0000456", **over: str) -> dict[str, str]:
    return {
        "record": "claim",
        "loan_no": loan,
        "borrower_name": "星河科技有限公司",
        "borrower_credit_code": CREDIT,
        "principal_fen": "500000000",
        "interest_fen": "1250000",
        "costs_fen": "0",
        "defaulted_on": "2024-03-31",
        **over,
    }


def pledge_row(loan: str = "0000456", reg: str = "00123", **over: str) -> dict[str, str]:
    return {
        "record": "pledge",
        "loan_no": loan,
        "kind": "trademark",
        "registration_no": reg,
        "rank": "1",
        "registered_on": "2023-06-30",
        **over,
    }


def to_csv(rows: list[dict[str, str]], *, columns: list[str] | None = None) -> str:
    out = io.StringIO()
    keys = columns or [c.key for c in CSV_COLUMNS]
    writer = csv.DictWriter(out, fieldnames=keys, extrasaction="raise")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return out.getvalue()


def parse_csv(rows: list[dict[str, str]], encoding: str = "utf-8") -> ParsedFile:
    return parse(to_csv(rows).encode(encoding), today=TODAY)


def problems_by_row(parsed: ParsedFile) -> dict[int | None, list[tuple[str | None, str]]]:
    out: dict[int | None, list[tuple[str | None, str]]] = {}
    for p in parsed.problems:
        out.setdefault(p.row, []).append((p.column, p.code))
    return out


def workbook(sheets: dict[str, list[list[Any]]]) -> openpyxl.Workbook:
    wb = openpyxl.Workbook()
    first = wb.active
    assert first is not None
    wb.remove(first)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
    return wb


def xlsx_bytes(wb: openpyxl.Workbook) -> bytes:
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


ASSET_HEADER = ["kind", "registration_no", "title", "holder", "legal_status", "appraisal_fen"]


# --------------------------------------------------------------------------- ids stay text


def test_leading_zeros_survive_in_csv() -> None:
    parsed = parse_csv([asset_row("00123"), claim_row("0000456"), pledge_row("0000456", "00123")])
    assert parsed.problems == []
    assert parsed.assets[0].data.registration_no == "00123"
    assert parsed.assets[0].data.classes == ["09", "42"]
    assert parsed.claims[0].data.loan_no == "0000456"
    assert parsed.pledges[0].key == ("0000456", "trademark", "00123")


def test_leading_zeros_survive_in_xlsx_text_cells_and_number_cells_are_refused() -> None:
    wb = workbook(
        {
            "assets": [
                ASSET_HEADER,
                ["trademark", "000777", "甲", "某公司", "registered", 100],
                ["trademark", 777, "乙", "某公司", "registered", 100],  # typed as a number: zeros may be gone
                ["trademark", 123, "丙", "某公司", "registered", 100],
                ["trademark", 9.1e17, "丁", "某公司", "registered", 100],
            ]
        }
    )
    ws = wb["assets"]
    ws["B4"].number_format = "000000"  # fixed-width zero format: Excel shows 000123, which is used
    parsed = parse(xlsx_bytes(wb), today=TODAY)
    assert [a.data.registration_no for a in parsed.assets] == ["000777", "000123"]
    assert problems_by_row(parsed) == {
        3: [("registration_no", "id_not_text")],
        5: [("registration_no", "id_not_text")],
    }
    assert "leading zeros" in parsed.problems[0].reason


def test_xlsx_sheets_dates_and_numbers() -> None:
    wb = workbook(
        {
            "instructions": [["anything at all"], ["is ignored"]],
            "assets": [
                [*ASSET_HEADER, "granted_on"],
                ["trademark", "001", "甲", "某公司", "registered", 150000000, date(2019, 8, 7)],
                ["trademark", "002", "乙", "某公司", "registered", 1.5, "2019/08/07"],
            ],
            "claims": [
                [
                    "loan_no",
                    "borrower_name",
                    "borrower_credit_code",
                    "principal_fen",
                    "interest_fen",
                    "costs_fen",
                    "defaulted_on",
                ],
                ["007", "某公司", CREDIT, 100, 0, 0, "2024-01-31"],
            ],
            "pledges": [["loan_no", "kind", "registration_no"], ["007", "trademark", "001"]],
        }
    )
    parsed = parse(xlsx_bytes(wb), today=TODAY)
    assert parsed.format == "xlsx" and parsed.rows == 4
    assert problems_by_row(parsed) == {3: [("appraisal_fen", "not_integer")]}
    assert parsed.problems[0].sheet == "assets"
    assert parsed.assets[0].data.granted_on == date(2019, 8, 7)
    assert parsed.assets[0].data.appraisal_fen == 150000000
    assert parsed.claims[0].data.loan_no == "007"
    assert parsed.pledges[0].asset_key == ("trademark", "001")


# --------------------------------------------------------------------------- every bad row


def test_every_bad_row_is_reported_with_row_number_column_and_reason() -> None:
    rows = [
        asset_row("A1"),  # row 2 fine
        asset_row("A2", appraisal_fen="1.5"),  # row 3
        asset_row("A3", kind="patent"),  # row 4
        asset_row("A4", holder=""),  # row 5
        claim_row("L1"),  # row 6 fine
        claim_row("L2", principal_fen="-100", defaulted_on="31/01/2024"),  # row 7: two problems
        claim_row("L3", borrower_credit_code="123"),  # row 8
        pledge_row("L1", "A1"),  # row 9 fine
        pledge_row("L1", "A1", rank="first"),  # row 10 duplicate and bad rank
        pledge_row("L2", "A2", registered_on="2099-01-01"),  # row 11
        asset_row("A1"),  # row 12 duplicate of row 2
        asset_row("A5", title="", title_en=""),  # row 13: no title at all
        {"record": "listing"},  # row 14
    ]
    parsed = parse_csv(rows)
    found = problems_by_row(parsed)
    assert sorted(r for r in found if r is not None) == [3, 4, 5, 7, 8, 10, 11, 12, 13, 14]
    assert found[3] == [("appraisal_fen", "not_integer")]
    assert found[4] == [("kind", "invalid_choice")]
    assert found[5] == [("holder", "required")]
    assert sorted(found[7]) == [("defaulted_on", "bad_date"), ("principal_fen", "negative")]
    assert found[8] == [("borrower_credit_code", "invalid")]
    assert sorted(found[10]) == [("rank", "not_integer"), ("registration_no", "duplicate")]
    assert found[11] == [("registered_on", "in_future")]
    assert found[12] == [("registration_no", "duplicate")]
    assert found[13] == [("title", "invalid")]
    assert found[14] == [("record", "invalid_choice")]
    assert all(p.reason and p.sheet == "csv" for p in parsed.problems)
    assert {p.code for p in parsed.problems} <= set(PROBLEM_CODES)
    assert "row 2" in next(p.reason for p in parsed.problems if p.row == 12)
    assert parsed.bad_rows() == [("csv", r) for r in (3, 4, 5, 7, 8, 10, 11, 12, 13, 14)]
    # good rows are still read; a bad row's natural key is known (no cascade to pledges)
    assert [a.data.registration_no for a in parsed.assets] == ["A1"]
    assert ("trademark", "A2") in parsed.asset_keys and "L2" in parsed.loan_nos


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("1.5", "not_integer"),
        ("1e3", "not_integer"),
        ("1,000", "not_integer"),
        ("¥100", "not_integer"),
        ("100.00", "not_integer"),
        ("-5", "negative"),
        ("9000000000000001", "too_large"),
        ("9000000000000000001", "too_large"),
        ("99999999999999999999999999", "too_large"),
        ("true", "not_integer"),
    ],
)
def test_amounts_must_be_whole_fen(value: str, code: str) -> None:
    parsed = parse_csv([claim_row(principal_fen=value)])
    assert [(p.row, p.column, p.code) for p in parsed.problems] == [(2, "principal_fen", code)]


def test_amount_bounds_and_spaces() -> None:
    parsed = parse_csv([claim_row(principal_fen=" 9000000000000000 ", interest_fen="0", costs_fen="007")])
    assert parsed.problems == []
    assert parsed.claims[0].data.principal_fen == importer.FEN_MAX == 9 * 10**15
    assert parsed.claims[0].data.costs_fen == 7


def test_xlsx_number_amounts_must_be_whole() -> None:
    header = [
        "loan_no",
        "borrower_name",
        "borrower_credit_code",
        "principal_fen",
        "interest_fen",
        "costs_fen",
    ]
    base = ["L", "某公司", CREDIT]
    wb = workbook(
        {
            "claims": [
                [*header, "defaulted_on"],
                [*base[:1], *base[1:], 100.0, 0, 0, "2024-01-31"],
                ["L2", *base[1:], 100.5, 0, 0, "2024-01-31"],
                ["L3", *base[1:], -1, 0, 0, "2024-01-31"],
                ["L4", *base[1:], 2.0**60, 0, 0, "2024-01-31"],
            ]
        }
    )
    parsed = parse(xlsx_bytes(wb), today=TODAY)
    assert problems_by_row(parsed) == {
        3: [("principal_fen", "not_integer")],
        4: [("principal_fen", "negative")],
        5: [("principal_fen", "too_large")],
    }
    assert parsed.claims[0].data.principal_fen == 100


# --------------------------------------------------------------------------- encodings, layout


def test_utf8_bom_is_not_part_of_the_first_header() -> None:
    data = codecs.BOM_UTF8 + to_csv([asset_row("0001")]).encode("utf-8")
    parsed = parse(data, today=TODAY)
    assert parsed.problems == []
    assert parsed.assets[0].data.holder == "星河科技有限公司"


def test_gb18030_is_read_when_the_file_is_not_utf8() -> None:
    parsed = parse_csv([asset_row("0001", holder="深圳市龍華區㐀科技有限公司")], encoding="gb18030")
    assert parsed.problems == []
    assert parsed.assets[0].data.holder == "深圳市龍華區㐀科技有限公司"


def test_tab_separated_and_chinese_headers_and_names() -> None:
    header = "记录类型\t资产类型\t登记号\t名称\t权利人\t法律状态\t评估值（分）\n"
    text = header + "资产\t发明专利\tZL0012\t一种装置\t某公司\t已授权\t100\n"
    parsed = parse(text.encode("utf-8"), today=TODAY)
    assert parsed.problems == []
    a = parsed.assets[0].data
    assert (a.kind, a.registration_no, a.legal_status, a.appraisal_fen) == (
        "invention_patent",
        "ZL0012",
        "granted",
        100,
    )


def test_dates_in_accepted_forms() -> None:
    parsed = parse_csv(
        [
            asset_row("1", granted_on="2024/01/31"),
            asset_row("2", granted_on="2024-1-31"),
            asset_row("3", granted_on="2024年1月31日"),
            asset_row("4", granted_on="2024-01-31 00:00:00"),
            asset_row("5", granted_on="2024-02-30"),
            asset_row("6", granted_on="01/31/2024"),
        ]
    )
    assert [a.data.granted_on for a in parsed.assets] == [date(2024, 1, 31)] * 4
    assert problems_by_row(parsed) == {6: [("granted_on", "bad_date")], 7: [("granted_on", "bad_date")]}


def test_header_problems_are_reported_once() -> None:
    columns = ["record", "kind", "registration_no", "title", "legal_status", "regstration", "loan_no"]
    text = to_csv(
        [{"record": "asset", "kind": "trademark", "registration_no": "1", "title": "x"}] * 3, columns=columns
    )
    parsed = parse(text.encode(), today=TODAY)
    assert [(p.row, p.column, p.code) for p in parsed.problems] == [
        (1, "regstration", "unknown_column"),
        (1, "holder", "missing_column"),
    ]


def test_csv_needs_a_record_column_and_other_types_columns_stay_empty() -> None:
    no_record = parse(b"kind,registration_no\ntrademark,1\n", today=TODAY)
    assert [(p.row, p.column, p.code) for p in no_record.problems] == [(1, "record", "missing_column")]
    crossed = parse_csv([asset_row("1", principal_fen="100")])
    assert [(p.row, p.column, p.code) for p in crossed.problems] == [(2, "principal_fen", "not_applicable")]


def test_co_owners_booleans_and_lists() -> None:
    parsed = parse_csv(
        [
            asset_row("1", co_owners="甲公司=是; 乙公司", preservation_order="是", ownership_dispute="false"),
            claim_row("L", bucket_order="interest；costs；principal"),
            asset_row("2", preservation_order="maybe"),
        ]
    )
    a = parsed.assets[0].data
    assert [(c.name, c.consented) for c in a.co_owners] == [("甲公司", True), ("乙公司", False)]
    assert a.preservation_order is True and a.ownership_dispute is False
    assert parsed.claims[0].data.bucket_order == ["interest", "costs", "principal"]
    assert problems_by_row(parsed) == {4: [("preservation_order", "invalid")]}


def test_unreadable_and_empty_files() -> None:
    assert [p.code for p in parse(b"", today=TODAY).problems] == ["no_rows"]
    assert [p.code for p in parse(b"PK\x03\x04garbage", today=TODAY).problems] == ["unreadable"]
    assert [p.code for p in parse(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1rest", today=TODAY).problems] == [
        "unreadable"
    ]
    assert [p.code for p in parse(b"record\n", expect="xlsx", today=TODAY).problems] == ["unreadable"]
    no_sheet = xlsx_bytes(workbook({"Sheet1": [["a", "b"], [1, 2]]}))
    assert [p.code for p in parse(no_sheet, today=TODAY).problems] == ["no_sheets"]


# --------------------------------------------------------------------------- templates


def test_csv_template_parses_back_cleanly() -> None:
    data = importer.template_csv()
    assert data.startswith(codecs.BOM_UTF8)
    parsed = parse(data, today=TODAY)
    assert parsed.problems == [] and parsed.rows == 3
    assert [len(parsed.assets), len(parsed.claims), len(parsed.pledges)] == [1, 1, 1]
    assert parsed.pledges[0].asset_key == parsed.assets[0].key
    assert parsed.assets[0].data.registration_no.startswith("00")


def test_xlsx_template_parses_back_cleanly_and_explains_itself() -> None:
    data = importer.template_xlsx()
    parsed = parse(data, today=TODAY)
    assert parsed.problems == [] and parsed.rows == 3
    assert parsed.claims[0].data.loan_no.startswith("00")
    wb = openpyxl.load_workbook(io.BytesIO(data))
    assert wb.sheetnames == ["instructions", "assets", "claims", "pledges"]
    text = " ".join(str(c.value) for row in wb["instructions"].iter_rows() for c in row if c.value)
    assert "leading zeros" in text and "前导零" in text and "dry run" in text and "试运行" in text
    assert wb["assets"]["B2"].number_format == "@"  # ids are text cells


def test_every_problem_code_has_a_label_in_both_languages() -> None:
    zh, en = i18n.catalogue("zh_CN"), i18n.catalogue("en")
    missing = [c for c in PROBLEM_CODES if f"import.problem.{c}" not in zh or f"import.problem.{c}" not in en]
    assert not missing
