"""Request bodies for collateral and listings with sensible defaults (eligible unless told otherwise)."""

from __future__ import annotations

import secrets
from datetime import date, timedelta
from typing import Any

from market.clock import today_cst


def reg_no(prefix: str = "ZL") -> str:
    return f"{prefix}0{secrets.randbelow(10**11):011d}.{secrets.randbelow(10)}"


def patent(**over: Any) -> dict[str, Any]:
    today = today_cst()
    body: dict[str, Any] = {
        "kind": "invention_patent",
        "registration_no": reg_no(),
        "title": "一种锂电池正极材料的制备方法",
        "title_en": "Method for preparing a lithium battery cathode material",
        "holder": "深圳市某某科技有限公司",
        "filed_on": "2019-03-01",
        "granted_on": "2021-06-01",
        "legal_status": "granted",
        "classes": ["H01M 4/505"],
        "appraisal_fen": 100_000_000,
        "appraised_on": (today - timedelta(days=60)).isoformat(),
        "appraiser": "中联资产评估",
        "annuity_paid_through": (today + timedelta(days=200)).isoformat(),
    }
    body.update(over)
    return body


def trademark(**over: Any) -> dict[str, Any]:
    today = today_cst()
    body: dict[str, Any] = {
        "kind": "trademark",
        "registration_no": reg_no("TM"),
        "title": "飞鹰",
        "title_en": "Flying Eagle",
        "holder": "飞鹰食品有限公司",
        "granted_on": "2018-05-01",
        "expires_on": (date(today.year + 5, 1, 1)).isoformat(),
        "legal_status": "registered",
        "classes": ["30"],
        "appraisal_fen": 50_000_000,
        "appraised_on": (today - timedelta(days=30)).isoformat(),
    }
    body.update(over)
    return body


def claim(asset_ids: list[int], **over: Any) -> dict[str, Any]:
    today = today_cst()
    body: dict[str, Any] = {
        "loan_no": f"LN{secrets.token_hex(5).upper()}",
        "borrower": {"name": "深圳市某某科技有限公司", "credit_code": "91440300MA5DXXXX1Y"},
        "principal_fen": 60_000_000,
        "interest_fen": 3_000_000,
        "costs_fen": 200_000,
        "defaulted_on": (today - timedelta(days=100)).isoformat(),
        "pledges": [
            {"asset_id": a, "registration_no": f"ZX{secrets.token_hex(4)}", "registered_on": "2023-01-10"}
            for a in asset_ids
        ],
    }
    body.update(over)
    return body
