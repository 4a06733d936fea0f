"""A live demo: banks, claims, Chinese and English IP titles, buyers, and bidders that keep auctions moving.

``seed`` fills the database once, through the same services the API calls, so every rule and
audit entry applies (a second run finds the demo operator and adds nothing). ``top_up``
schedules rounds on the demo banks' published listings until three are scheduled or live.
``run_bidders`` is the heartbeat of ``market serve --demo``: it keeps three auctions going and
has a demo buyer bid every few seconds, mostly near the end so anti-sniping extensions show.

Only one bidder loop runs across every worker and instance: the loop holds a session-level
advisory lock on a connection of its own; the others try again every ``retry_seconds``, so when
the holder dies (and PostgreSQL drops its session) another worker takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from auctions import rules, services, store
from auctions.tables import auction_registrations, auctions
from listings import model as lmodel, recommend, services as lservices, store as lstore
from listings.schemas import AssetIn, ClaimIn, ListingIn
from listings.tables import listings
from market import clock, identity
from market.config import Settings
from market.db import run_in_transaction, transaction
from market.errors import MarketError
from market.money import format_cny
from market.parties import Actor, Role
from market.tables import orgs, users

log = logging.getLogger(__name__)

PASSWORD = "demo-market-2026"
OPERATOR_EMAIL = "operator@demo.example.com"
LIVE_TARGET = 3  # demo auctions kept scheduled or live
BIDDER_LOCK_KEY = 7300010  # session lock: the one process that drives the demo bidders
SEED_LOCK_KEY = 7300011  # transaction lock: one seed at a time
SCHEDULE_LOCK_KEY = 7300012  # transaction lock: count-and-schedule without overshooting

# Shortened timing for the demo (settings field -> value); `market serve --demo` sets these
# unless the user did. Money rules are never settings.
TIMING: dict[str, int] = {
    "min_notice_seconds": 0,
    "min_reauction_notice_seconds": 0,
    "min_auction_seconds": 60,
    "min_extension_seconds": 10,
    "extension_seconds": 30,
}

YUAN = 100  # fen


def timing_environment(settings: Settings) -> dict[str, str]:
    """The environment variables of ``TIMING`` that ``settings`` did not get from the user."""
    return {
        str(Settings.model_fields[name].alias): str(value)
        for name, value in TIMING.items()
        if name not in settings.model_fields_set
    }


# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True, slots=True)
class PartySpec:
    key: str
    name: str
    email: str
    kinds: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()

    @property
    def credit_code(self) -> str:
        return identity.make_credit_code(f"demo-{self.key}")


@dataclass(frozen=True, slots=True)
class AssetSpec:
    key: str
    bank: str
    kind: str
    registration_no: str
    title: str
    title_en: str
    holder: str
    appraisal_yuan: int
    classes: tuple[str, ...] = ()
    filed_on: str | None = None
    granted_on: str | None = None
    first_use_on: str | None = None
    created_on: str | None = None
    appraised_days_ago: int = 45
    appraiser: str = "中联资产评估集团有限公司"
    description: str = ""
    co_owners: tuple[tuple[str, bool], ...] = ()
    licenses: tuple[Mapping[str, str], ...] = ()
    similar_mark_group: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimSpec:
    bank: str
    loan_no: str
    borrower: str
    principal_yuan: int
    interest_yuan: int
    costs_yuan: int
    defaulted_days_ago: int
    pledges: tuple[tuple[str, int, str], ...]  # (asset key, declared rank, registered on)
    pool_code: str | None = None


@dataclass(frozen=True, slots=True)
class ListingSpec:
    bank: str
    mode: str
    assets: tuple[str, ...]
    title: str
    title_en: str
    description: str = ""
    license_terms: Mapping[str, Any] | None = None
    backstop: tuple[str, int, int, int] | None = None  # (buyer key, price, break-up fee, expenses) yuan
    asking_yuan: int | None = None


BANKS = (
    PartySpec("icbc-sz", "中国工商银行深圳分行", "icbc.sz@demo.example.com"),
    PartySpec("cmb-sz", "招商银行深圳分行", "cmb.sz@demo.example.com"),
    PartySpec("hzb-tech", "杭州银行科技支行", "hzbank.tech@demo.example.com"),
)

BUYERS = (
    PartySpec(
        "pengcheng-energy",
        "深圳市鹏城新能源科技有限公司",
        "pengcheng@demo.example.com",
        ("invention_patent", "utility_model"),
        ("H01M",),
        ("锂电池", "储能"),
    ),
    PartySpec(
        "yuexin-semi",
        "广州粤芯半导体技术有限公司",
        "yuexin@demo.example.com",
        ("ic_layout", "invention_patent"),
        ("H01L", "G06T"),
        ("芯片", "图像"),
    ),
    PartySpec(
        "xixi-digital",
        "杭州西溪数字科技有限公司",
        "xixi@demo.example.com",
        ("software_copyright",),
        (),
        ("仓储", "物联网"),
    ),
    PartySpec(
        "zgc-ip",
        "北京中关村知识产权运营有限公司",
        "zgc@demo.example.com",
        ("invention_patent", "utility_model", "design_patent", "trademark"),
        (),
        ("专利", "商标"),
    ),
    PartySpec(
        "suzhou-nano",
        "苏州纳微新材料有限公司",
        "nanowei@demo.example.com",
        ("invention_patent",),
        ("H01M", "C01G"),
        ("正极材料", "电解质"),
    ),
    PartySpec(
        "bayu-food",
        "重庆巴渝食品有限公司",
        "bayu@demo.example.com",
        ("trademark", "geographical_indication"),
        ("29", "30", "31"),
        ("食品", "商标"),
    ),
    PartySpec(
        "pujiang-med",
        "上海浦江医疗器械有限公司",
        "pujiang@demo.example.com",
        ("invention_patent", "utility_model"),
        ("A61F", "A61M"),
        ("医疗", "支架"),
    ),
    PartySpec(
        "yongjiang-equip",
        "宁波甬江智能装备有限公司",
        "yongjiang@demo.example.com",
        ("utility_model", "design_patent", "software_copyright"),
        ("G06T",),
        ("智能制造", "视觉检测"),
    ),
)

# fmt: off
HUALI = "深圳市华锂新能源科技有限公司"
PENGCHENG = "深圳鹏程食品集团有限公司"
HERUI = "浙江和瑞医疗科技有限公司"
YUNQI = "杭州云栖智能科技有限公司"

ASSETS = (
    # 中国工商银行深圳分行: a battery maker's portfolio
    AssetSpec(
        "hl-cathode", "icbc-sz", "invention_patent", "ZL201910234567.8",
        "一种高镍三元正极材料及其制备方法",
        "High-nickel ternary cathode material and its preparation method",
        HUALI, 12_800_000, ("H01M 4/525", "C01G 53/00"), "2019-04-02", "2021-09-14",
        description="NCM811 共沉淀-烧结工艺，首次放电比容量 ≥ 205 mAh/g，已在两条中试线验证。",
        licenses=(
            {"type": "non_exclusive", "field": "储能电池", "territory": "广东省",
             "starts_on": "2022-01-01", "ends_on": "2025-12-31", "licensee": "东莞市储源电子有限公司"},
        ),
    ),
    AssetSpec(
        "hl-electrolyte", "icbc-sz", "invention_patent", "ZL202010876543.2",
        "一种固态电解质薄膜的低温制备工艺",
        "Low-temperature process for preparing solid-electrolyte films",
        HUALI, 8_600_000, ("H01M 10/0562",), "2020-08-19", "2022-11-08",
    ),
    AssetSpec(
        "hl-cooling", "icbc-sz", "utility_model", "ZL202120345678.9",
        "一种电池包液冷散热结构", "Liquid-cooling structure for battery packs",
        HUALI, 1_200_000, ("H01M 10/613",), "2021-02-23", "2021-10-12",
    ),
    AssetSpec(
        "hl-housing", "icbc-sz", "utility_model", "ZL202220112233.4",
        "一种便携式储能电源外壳", "Housing for a portable energy-storage power supply",
        HUALI, 650_000, ("H02J 7/00",), "2022-01-17", "2022-06-21",
    ),
    AssetSpec(
        "hl-design", "icbc-sz", "design_patent", "ZL202230556677.1",
        "储能电源（户外型）", "Energy-storage power station (outdoor model)",
        HUALI, 480_000, ("13-02",), "2022-08-30", "2023-01-10",
    ),
    AssetSpec(
        "hl-bms-chip", "icbc-sz", "ic_layout", "BS.215512345",
        "HL-BMS01 低功耗电池管理芯片布图设计",
        "Layout design of the HL-BMS01 low-power battery-management chip",
        HUALI, 5_200_000, (), "2021-08-10", "2021-11-20", "2021-05-01", "2020-12-01",
    ),
    AssetSpec(
        "hl-cloud", "icbc-sz", "software_copyright", "2021SR0456789",
        "华锂电池管理云平台 V3.0", "Huali battery-management cloud platform V3.0",
        HUALI, 900_000, (), None, "2021-04-06", "2021-03-15", "2020-11-30",
    ),
    # 招商银行深圳分行: consumer brands
    AssetSpec(
        "pc-word", "cmb-sz", "trademark", "23817645", "鹏程", "Pengcheng (word mark)",
        PENGCHENG, 3_600_000, ("30",), None, "2019-05-07", similar_mark_group="鹏程-食品",
    ),
    AssetSpec(
        "pc-logo", "cmb-sz", "trademark", "23817646", "鹏程 PENGCHENG（图形）",
        "Pengcheng (figurative mark)", PENGCHENG, 1_400_000, ("30",), None, "2019-05-07",
        similar_mark_group="鹏程-食品",
    ),
    AssetSpec(
        "pc-kitchen", "cmb-sz", "trademark", "31205588", "鹏程小厨", "Pengcheng Kitchen",
        PENGCHENG, 900_000, ("43",), None, "2020-02-14", similar_mark_group="鹏程-食品",
    ),
    AssetSpec(
        "pc-mascot", "cmb-sz", "copyright", "国作登字-2020-F-01034567",
        "鹏程吉祥物“程程”美术作品", "Mascot 'Chengcheng' (artwork)",
        PENGCHENG, 300_000, (), None, "2020-07-09", "2020-06-01", "2020-03-15",
    ),
    AssetSpec(
        "pc-giftbox", "cmb-sz", "design_patent", "ZL202130667788.5",
        "食品包装盒（中秋月饼礼盒）", "Food packaging box (mid-autumn mooncake gift box)",
        PENGCHENG, 260_000, ("09-03",), "2021-03-22", "2021-08-03",
    ),
    AssetSpec(
        "sxy-mark", "cmb-sz", "trademark", "18765432", "蜀香源", "Shuxiangyuan",
        "成都蜀香源食品有限公司", 2_200_000, ("29",), None, "2018-01-14",
        licenses=(
            {"type": "non_exclusive", "field": "肉制品", "territory": "重庆市",
             "starts_on": "2024-01-01", "ends_on": "2026-12-31", "licensee": "重庆巴渝食品有限公司"},
        ),
    ),
    AssetSpec(
        "gi-pomelo", "cmb-sz", "geographical_indication", "10983211",
        "梅州金柚（地理标志证明商标）", "Meizhou golden pomelo (geographical indication)",
        "梅州市金柚产业协会", 4_500_000, ("31",), None, "2020-08-14",
    ),
    # 杭州银行科技支行: medical devices and industrial software
    AssetSpec(
        "hr-imaging", "hzb-tech", "invention_patent", "ZL201810123456.7",
        "一种基于深度学习的医学影像病灶分割方法",
        "Deep-learning method for segmenting lesions in medical images",
        HERUI, 7_800_000, ("G06T 7/11", "G06N 3/08"), "2018-02-06", "2020-07-21",
        co_owners=(("浙江大学", True),),
    ),
    AssetSpec(
        "hr-stent", "hzb-tech", "invention_patent", "ZL201910987654.3",
        "一种可降解镁合金心血管支架及其制备方法",
        "Biodegradable magnesium-alloy cardiovascular stent and its preparation",
        HERUI, 9_500_000, ("A61F 2/82", "A61L 31/02"), "2019-10-15", "2022-03-29",
    ),
    AssetSpec(
        "hr-infusion", "hzb-tech", "utility_model", "ZL202121876543.0",
        "一种智能输液监测装置", "Smart infusion-monitoring device",
        HERUI, 700_000, ("A61M 5/168",), "2021-08-04", "2022-01-25",
    ),
    AssetSpec(
        "yq-wms", "hzb-tech", "software_copyright", "2022SR0123456",
        "云栖智慧仓储管理系统 V5.2", "Yunqi smart warehouse management system V5.2",
        YUNQI, 1_600_000, (), None, "2022-02-18", "2022-01-10", "2021-10-08",
    ),
    AssetSpec(
        "yq-edge", "hzb-tech", "software_copyright", "2020SR0987654",
        "云栖工业物联网边缘网关软件 V2.1", "Yunqi industrial-IoT edge gateway software V2.1",
        YUNQI, 1_100_000, (), None, "2020-06-30", "2020-05-20", "2020-02-11",
    ),
    AssetSpec(
        "yq-isp", "hzb-tech", "ic_layout", "BS.205501234",
        "YQ-ISP7 28nm 图像信号处理器布图设计",
        "Layout design of the YQ-ISP7 28 nm image signal processor",
        YUNQI, 6_300_000, (), "2020-12-18", "2021-04-09", "2020-11-02", "2020-06-30",
    ),
    AssetSpec(
        "yq-defect", "hzb-tech", "invention_patent", "ZL202011223344.5",
        "一种面向工业质检的小样本缺陷检测方法",
        "Few-shot defect detection method for industrial quality inspection",
        YUNQI, 3_900_000, ("G06T 7/00", "G06N 3/04"), "2020-11-12", "2023-02-17",
    ),
    AssetSpec(
        "yq-mark", "hzb-tech", "trademark", "45678901", "云栖智造", "Yunqi Smart Manufacturing",
        YUNQI, 800_000, ("9", "42"), None, "2021-01-28",
    ),
)

CLAIMS = (
    ClaimSpec(
        "icbc-sz", "ICBC-SZ-2023-0815", HUALI, 18_000_000, 1_260_000, 86_000, 300,
        (("hl-cathode", 1, "2023-03-01"), ("hl-electrolyte", 1, "2023-03-01"),
         ("hl-cooling", 1, "2023-03-01"), ("hl-bms-chip", 1, "2023-03-01")),
        pool_code="SZ-IPRISK-2023",
    ),
    ClaimSpec(
        "icbc-sz", "ICBC-SZ-2024-0211", HUALI, 6_500_000, 390_000, 32_000, 200,
        (("hl-cathode", 2, "2024-02-20"), ("hl-housing", 1, "2024-02-20"),
         ("hl-design", 1, "2024-02-20"), ("hl-cloud", 1, "2024-02-20")),
    ),
    ClaimSpec(
        "cmb-sz", "CMB-SZ-2022-1107", PENGCHENG, 9_000_000, 720_000, 45_000, 420,
        (("pc-word", 1, "2022-11-20"), ("pc-logo", 1, "2022-11-20"), ("pc-kitchen", 1, "2022-11-20"),
         ("pc-mascot", 1, "2022-11-20"), ("pc-giftbox", 1, "2022-11-20")),
    ),
    ClaimSpec(
        "cmb-sz", "CMB-SZ-2024-0105", PENGCHENG, 1_500_000, 96_000, 12_000, 150,
        (("pc-mascot", 2, "2024-01-10"), ("pc-giftbox", 2, "2024-01-10")),
    ),
    ClaimSpec(
        "cmb-sz", "CMB-SZ-2023-0630", "成都蜀香源食品有限公司", 2_000_000, 150_000, 18_000, 260,
        (("sxy-mark", 1, "2023-07-05"),),
    ),
    ClaimSpec(
        "cmb-sz", "CMB-SZ-2024-0318", "梅州市柚香农业发展有限公司", 3_000_000, 180_000, 20_000, 120,
        (("gi-pomelo", 1, "2024-03-25"),),
    ),
    ClaimSpec(
        "hzb-tech", "HZB-KJ-2023-0909", HERUI, 12_000_000, 840_000, 60_000, 330,
        (("hr-imaging", 1, "2023-09-15"), ("hr-stent", 1, "2023-09-15"), ("hr-infusion", 1, "2023-09-15")),
        pool_code="HZ-KJ-POOL-2023",
    ),
    ClaimSpec(
        "hzb-tech", "HZB-KJ-2023-0420", YUNQI, 8_000_000, 560_000, 40_000, 280,
        (("yq-wms", 1, "2023-04-25"), ("yq-edge", 1, "2023-04-25"), ("yq-defect", 1, "2023-04-25"),
         ("yq-mark", 1, "2023-04-25")),
    ),
    ClaimSpec(
        "hzb-tech", "HZB-KJ-2024-0601", YUNQI, 5_000_000, 300_000, 25_000, 90,
        (("yq-isp", 1, "2024-06-05"), ("yq-wms", 2, "2024-06-05")),
    ),
)

LISTINGS = (
    ListingSpec(
        "icbc-sz", "transfer", ("hl-cathode",),
        "高镍三元正极材料发明专利转让", "Transfer: high-nickel ternary cathode invention patent",
        "质押物处置。现有一项广东省内储能电池普通许可，随专利转让继续有效。",
        asking_yuan=11_000_000,
    ),
    ListingSpec(
        "icbc-sz", "license", ("hl-electrolyte",),
        "固态电解质薄膜工艺专利普通许可（3年）",
        "Non-exclusive licence (3 years): solid-electrolyte film process patent",
        "许可期三年，入门费加销售提成。",
        license_terms={"type": "non_exclusive", "term_months": 36, "territory": "中国大陆",
                       "field": "动力电池、储能电池", "upfront_fen": 1_800_000 * YUAN,
                       "royalty_bp": 250, "royalty_base": "许可产品净销售额"},
    ),
    ListingSpec(
        "icbc-sz", "bundle", ("hl-cooling", "hl-housing", "hl-design"),
        "储能电源结构专利组合（实用新型 + 外观设计）",
        "Bundle: energy-storage enclosure patents (utility models + design)",
    ),
    ListingSpec(
        "icbc-sz", "transfer", ("hl-bms-chip",),
        "HL-BMS01 电池管理芯片布图设计转让", "Transfer: HL-BMS01 battery-management chip layout design",
    ),
    ListingSpec(
        "icbc-sz", "transfer", ("hl-cloud",),
        "华锂电池管理云平台软件著作权转让", "Transfer: Huali battery-management cloud platform software",
    ),
    ListingSpec(
        "cmb-sz", "bundle", ("pc-word", "pc-logo", "pc-kitchen"),
        "“鹏程”系列商标整体转让（第30、43类）", "Bundle: the 'Pengcheng' family of marks (classes 30 and 43)",
        "同一商标权人在同一种或类似商品上注册的相同或近似商标，一并转让。",
    ),
    ListingSpec(
        "cmb-sz", "transfer", ("sxy-mark",),
        "“蜀香源”商标转让（第29类）", "Transfer: 'Shuxiangyuan' trademark (class 29)",
        "现有被许可人重庆巴渝食品有限公司享有优先购买权。",
    ),
    ListingSpec(
        "cmb-sz", "license", ("gi-pomelo",),
        "“梅州金柚”地理标志证明商标使用许可",
        "Licence to use the 'Meizhou golden pomelo' geographical indication",
        "地理标志只许可使用，不转让。",
        license_terms={"type": "non_exclusive", "term_months": 24, "territory": "广东省梅州市",
                       "field": "柚果及柚果加工品", "upfront_fen": 200_000 * YUAN, "royalty_bp": 100,
                       "royalty_base": "使用地理标志产品的销售额"},
    ),
    ListingSpec(
        "cmb-sz", "transfer", ("pc-mascot",),
        "吉祥物“程程”美术作品著作权转让", "Transfer: copyright in the 'Chengcheng' mascot artwork",
    ),
    ListingSpec(
        "cmb-sz", "transfer", ("pc-giftbox",),
        "中秋月饼礼盒外观设计专利转让", "Transfer: mooncake gift-box design patent",
    ),
    ListingSpec(
        "hzb-tech", "entrusted_acquisition", ("hr-stent",),
        "可降解镁合金心血管支架专利委托收购（设保底收购人）",
        "Entrusted acquisition with a backstop: biodegradable magnesium stent patent",
        "保底收购人已承诺以 700 万元收购；竞价须高于保底价、分手费与一个加价幅度之和。",
        backstop=("pujiang-med", 7_000_000, 140_000, 70_000),
    ),
    ListingSpec(
        "hzb-tech", "transfer", ("hr-imaging",),
        "医学影像病灶分割发明专利转让", "Transfer: medical-image lesion segmentation invention patent",
        "共有人浙江大学已书面同意转让。",
    ),
    ListingSpec(
        "hzb-tech", "transfer", ("hr-infusion",),
        "智能输液监测装置实用新型转让", "Transfer: smart infusion-monitoring utility model",
    ),
    ListingSpec(
        "hzb-tech", "bundle", ("yq-wms", "yq-edge", "yq-mark"),
        "云栖工业软件著作权及“云栖智造”商标组合",
        "Bundle: Yunqi industrial software copyrights with the 'Yunqi Smart Manufacturing' mark",
    ),
    ListingSpec(
        "hzb-tech", "license", ("yq-defect",),
        "小样本缺陷检测专利排他许可（5年）", "Sole licence (5 years): few-shot defect detection patent",
        license_terms={"type": "sole", "term_months": 60, "territory": "中国", "field": "工业视觉检测",
                       "upfront_fen": 900_000 * YUAN, "royalty_bp": 300, "royalty_base": "许可产品净销售额"},
    ),
    ListingSpec(
        "hzb-tech", "transfer", ("yq-isp",),
        "YQ-ISP7 图像信号处理器布图设计转让", "Transfer: YQ-ISP7 image signal processor layout design",
    ),
)

# Priority purchasers (优先购买权人) named when a demo bank schedules a round: registration no. -> buyer.
PRIORITY_HOLDERS = {"18765432": "bayu-food"}

# New lots a demo bank lists once every demo listing has been sold (kind, title, English title, holder,
# appraisal in yuan, classes).
MORE_LOTS: Mapping[str, Sequence[tuple[str, str, str, str, int, tuple[str, ...]]]] = {
    "icbc-sz": (
        ("invention_patent", "一种硅碳负极材料的预锂化方法",
         "Pre-lithiation method for silicon-carbon anodes", HUALI, 4_200_000, ("H01M 4/38",)),
        ("utility_model", "一种储能变流器散热风道", "Cooling air duct for an energy-storage converter",
         HUALI, 520_000, ("H02M 1/00",)),
    ),
    "cmb-sz": (
        ("design_patent", "茶叶包装罐（岭南茶语）", "Tea caddy (Lingnan Tea Talk)", PENGCHENG, 230_000,
         ("09-01",)),
        ("software_copyright", "鹏程门店数字化收银系统 V2.0", "Pengcheng digital store checkout system V2.0",
         PENGCHENG, 380_000, ()),
    ),
    "hzb-tech": (
        ("software_copyright", "云栖设备预测性维护平台 V1.4", "Yunqi predictive-maintenance platform V1.4",
         YUNQI, 950_000, ()),
        ("utility_model", "一种一次性使用无菌穿刺针", "Single-use sterile puncture needle", HERUI, 610_000,
         ("A61B 17/34",)),
    ),
}
# fmt: on


def _asset_body(spec: AssetSpec, today: date) -> AssetIn:
    patent_like = spec.kind in ("invention_patent", "utility_model", "design_patent")
    body: dict[str, Any] = {
        "kind": spec.kind,
        "registration_no": spec.registration_no,
        "title": spec.title,
        "title_en": spec.title_en,
        "description": spec.description,
        "holder": spec.holder,
        "filed_on": spec.filed_on,
        "granted_on": spec.granted_on,
        "first_use_on": spec.first_use_on,
        "created_on": spec.created_on,
        "legal_status": "granted" if patent_like or spec.kind == "ic_layout" else "registered",
        "classes": list(spec.classes),
        "appraisal_fen": spec.appraisal_yuan * YUAN,
        "appraised_on": (today - timedelta(days=spec.appraised_days_ago)).isoformat(),
        "appraiser": spec.appraiser,
        "co_owners": [{"name": n, "consented": c} for n, c in spec.co_owners],
        "licenses": [dict(lic) for lic in spec.licenses],
        "annuity_paid_through": (today + timedelta(days=200)).isoformat() if patent_like else None,
        "similar_mark_group": spec.similar_mark_group,
    }
    return AssetIn.model_validate(body)


def _claim_body(spec: ClaimSpec, asset_ids: Mapping[str, int], today: date) -> ClaimIn:
    return ClaimIn.model_validate(
        {
            "loan_no": spec.loan_no,
            "borrower": {"name": spec.borrower, "credit_code": identity.make_credit_code(spec.borrower)},
            "principal_fen": spec.principal_yuan * YUAN,
            "interest_fen": spec.interest_yuan * YUAN,
            "costs_fen": spec.costs_yuan * YUAN,
            "defaulted_on": (today - timedelta(days=spec.defaulted_days_ago)).isoformat(),
            "pool_code": spec.pool_code,
            "pledges": [
                {
                    "asset_id": asset_ids[key],
                    "rank": rank,
                    "registration_no": f"ZX{on.replace('-', '')}{asset_ids[key]:05d}",
                    "registered_on": on,
                }
                for key, rank, on in spec.pledges
            ],
        }
    )


def _listing_body(spec: ListingSpec, asset_ids: Mapping[str, int], buyers: Mapping[str, Actor]) -> ListingIn:
    backstop = None
    if spec.backstop is not None:
        who, price, fee, expenses = spec.backstop
        backstop = {
            "acquirer_org_id": buyers[who].org_id,
            "price_fen": price * YUAN,
            "break_up_fee_fen": fee * YUAN,
            "expense_fen": expenses * YUAN,
        }
    return ListingIn.model_validate(
        {
            "title": spec.title,
            "title_en": spec.title_en,
            "description": spec.description,
            "mode": spec.mode,
            "asset_ids": [asset_ids[key] for key in spec.assets],
            "license_terms": dict(spec.license_terms) if spec.license_terms else None,
            "backstop": backstop,
            "asking_price_fen": spec.asking_yuan * YUAN if spec.asking_yuan else None,
        }
    )


# --------------------------------------------------------------------------- parties


@dataclass(frozen=True)
class Parties:
    """The demo's signed-in actors: the operator, each bank's user and each buyer's user, by key."""

    operator: Actor
    banks: dict[str, Actor]
    buyers: dict[str, Actor]
    names: dict[int, str]  # organisation id -> name

    def bank_of(self, org_id: int) -> Actor | None:
        return next((a for a in self.banks.values() if a.org_id == org_id), None)

    def buyer_of(self, org_id: int) -> Actor | None:
        return next((a for a in self.buyers.values() if a.org_id == org_id), None)

    @property
    def bank_org_ids(self) -> list[int]:
        return [a.org_id for a in self.banks.values()]


async def load_parties(conn: AsyncConnection) -> Parties | None:
    """The demo's actors, or None when the demo has not been seeded."""
    by_email = {OPERATOR_EMAIL: ("operator", "")} | {s.email: ("bank", s.key) for s in BANKS}
    by_email |= {s.email: ("buyer", s.key) for s in BUYERS}
    q = (
        select(users.c.id, users.c.email, users.c.role, users.c.org_id, orgs.c.name, orgs.c.verified)
        .join(orgs, orgs.c.id == users.c.org_id)
        .where(users.c.email.in_(list(by_email)))
    )
    found: dict[str, dict[str, Actor]] = {"operator": {}, "bank": {}, "buyer": {}}
    names: dict[int, str] = {}
    for r in (await conn.execute(q)).all():
        side, key = by_email[r.email]
        if r.role != side:
            continue
        found[side][key] = Actor(r.id, r.org_id, Role(r.role), r.email, bool(r.verified))
        names[r.org_id] = r.name
    if not found["operator"] or len(found["bank"]) < len(BANKS) or len(found["buyer"]) < len(BUYERS):
        return None
    return Parties(found["operator"][""], found["bank"], found["buyer"], names)


@dataclass(frozen=True)
class DemoInfo:
    """What ``seed`` did and how to sign in (every demo user has ``password``)."""

    created: bool
    password: str
    operator_email: str
    bank_email: str
    bank_name: str
    buyer_email: str
    buyer_name: str
    parties: Parties = field(repr=False)


def _info(parties: Parties, created: bool) -> DemoInfo:
    bank, buyer = parties.banks[BANKS[0].key], parties.buyers[BUYERS[0].key]
    return DemoInfo(
        created=created,
        password=PASSWORD,
        operator_email=OPERATOR_EMAIL,
        bank_email=bank.email,
        bank_name=parties.names[bank.org_id],
        buyer_email=buyer.email,
        buyer_name=parties.names[buyer.org_id],
        parties=parties,
    )


# --------------------------------------------------------------------------- seed


async def seed(engine: AsyncEngine, settings: Settings) -> DemoInfo:
    """Fill the database with the demo once (one transaction); a later run finds it and adds nothing."""
    async with transaction(engine) as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SEED_LOCK_KEY})
        parties = await load_parties(conn)
        created = parties is None
        if parties is None:
            await _create_collateral(conn, await _create_parties(conn), clock.today_cst())
            parties = await load_parties(conn)
            assert parties is not None
    if created:
        log.info("demo: seeded %d banks, %d buyers, %d assets, %d listings", *_counts())
    return _info(parties, created)


def _counts() -> tuple[int, int, int, int]:
    return len(BANKS), len(BUYERS), len(ASSETS), len(LISTINGS)


async def _create_parties(conn: AsyncConnection) -> Parties:
    user = await identity.create_operator(conn, email=OPERATOR_EMAIL, password=PASSWORD)
    operator = Actor(user.id, user.org_id, Role.OPERATOR, user.email)
    names: dict[int, str] = {}

    async def party(spec: PartySpec, kind: Role) -> Actor:
        org = await identity.create_org(
            conn, operator, name=spec.name, kind=kind, credit_code=spec.credit_code
        )
        made = await identity.create_user(conn, operator, org_id=org.id, email=spec.email, password=PASSWORD)
        names[org.id] = org.name
        return Actor(made.id, org.id, kind, made.email)

    banks = {s.key: await party(s, Role.BANK) for s in BANKS}
    buyers = {s.key: await party(s, Role.BUYER) for s in BUYERS}
    for s in BUYERS:
        await recommend.put_interests(conn, buyers[s.key], s.kinds, s.classes, s.keywords)
    return Parties(operator, banks, buyers, names)


async def _create_collateral(conn: AsyncConnection, parties: Parties, today: date) -> None:
    asset_ids: dict[str, int] = {}
    for a in ASSETS:
        view = await lservices.create_asset(conn, parties.banks[a.bank], _asset_body(a, today))
        asset_ids[a.key] = view.row.id
    for c in CLAIMS:
        await lservices.create_claim(conn, parties.banks[c.bank], _claim_body(c, asset_ids, today))
    for spec in LISTINGS:
        bank = parties.banks[spec.bank]
        made = await lservices.create_listing(conn, bank, _listing_body(spec, asset_ids, parties.buyers))
        await lservices.publish_listing(conn, bank, made.row.id)


# --------------------------------------------------------------------------- scheduling rounds


class ListingDone(MarketError):
    code = "demo_listing_done"
    title = "The listing's round ladder has no further auction"


@dataclass
class Scheduler:
    """Keeps ``target`` demo auctions scheduled or live, one new round at a time."""

    engine: AsyncEngine
    settings: Settings
    parties: Parties
    rng: random.Random
    target: int = LIVE_TARGET
    lead_seconds: float = 3.0  # bidding opens this long after scheduling
    skip: set[int] = field(default_factory=set)  # listings that cannot take a round now

    async def active_ids(self) -> list[int]:
        async with self.engine.connect() as conn:
            return await _active_ids(conn, self.parties)

    async def fill(self) -> list[int]:
        """Schedule rounds until ``target`` are running (or nothing is left); return the running ids."""
        active = await self.active_ids()
        for _ in range(self.target - len(active)):
            made = await run_in_transaction(self.engine, self._schedule_one)
            if made is None:
                break
        return await self.active_ids()

    async def _schedule_one(self, conn: AsyncConnection) -> int | None:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCHEDULE_LOCK_KEY})
        if len(await _active_ids(conn, self.parties)) >= self.target:
            return None
        for listing in await self._candidates(conn):
            try:
                async with conn.begin_nested():
                    return await self._round(conn, listing)
            except MarketError as exc:
                self.skip.add(listing.id)
                log.info(
                    "demo: listing %d cannot take a round now (%s: %s)", listing.id, exc.code, exc.detail
                )
        new = await lstore.find_listing_row(conn, await self._new_lot(conn), lock=True)
        assert new is not None
        return await self._round(conn, new)

    async def _candidates(self, conn: AsyncConnection) -> list[Row[Any]]:
        q = select(listings).where(
            listings.c.bank_org_id.in_(self.parties.bank_org_ids),
            listings.c.status.in_(("published", "failed")),
            listings.c.mode != "license",  # licences are negotiated: their receipts settle one by one
        )
        rows = [r for r in (await conn.execute(q)).all() if r.id not in self.skip]
        self.rng.shuffle(rows)
        return sorted(rows, key=lambda r: r.status != "failed")  # re-auctions first

    async def _round(self, conn: AsyncConnection, listing: Row[Any]) -> int:
        bank = self.parties.bank_of(listing.bank_org_id)
        assert bank is not None
        spec, holders = await self._terms(conn, listing)
        row = await services.create_auction(conn, bank, spec, self.settings)
        acquirer = (listing.backstop or {}).get("acquirer_org_id")
        others = [b for b in self.parties.buyers.values() if b.org_id not in holders and b.org_id != acquirer]
        bidders = self.rng.sample(others, k=min(len(others), self.rng.randint(3, 5)))
        bidders += [b for b in self.parties.buyers.values() if b.org_id in holders]
        for buyer in bidders:
            await services.register(conn, buyer, row.id, self.settings)
        log.info(
            "demo: scheduled auction %d (round %d) of listing %d %s: start ¥%s, %d bidders, ends %s",
            row.id, row.round_no, listing.id, listing.title, format_cny(spec.start_price_fen),
            len(bidders), spec.ends_at.isoformat(timespec="seconds"),
        )  # fmt: skip
        return int(row.id)

    async def _terms(self, conn: AsyncConnection, listing: Row[Any]) -> tuple[services.NewAuction, set[int]]:
        previous = await _last_round(conn, listing.id)
        appraisal = int(listing.appraisal_fen)
        increment = _ceil_to(max(appraisal // 200, 1_000 * YUAN), 1_000 * YUAN)
        start = self._start_price(appraisal, previous)
        if listing.backstop:
            b = listing.backstop
            floor = lmodel.minimum_qualifying_bid(b["price_fen"], b.get("break_up_fee_fen", 0), increment)
            start = max(start, _ceil_to(floor, 1_000 * YUAN))
        now = await services._db_now(conn)
        starts_at = self._opening(listing, previous, now)
        window = max(self.settings.min_auction_seconds, self.rng.randint(90, 180))
        holders = await self._priority_holders(conn, listing.id)
        spec = services.NewAuction(
            listing_id=listing.id,
            start_price_fen=start,
            increment_fen=increment,
            deposit_fen=start // 10,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(seconds=window),
            priority_holder_org_ids=tuple(holders),
        )
        return spec, set(holders)

    def _start_price(self, appraisal: int, previous: Row[Any] | None) -> int:
        if previous is None:
            percent = self.rng.choice((70, 72, 75, 80))
            return _ceil_to(rules.percent_of(appraisal, percent), 1_000 * YUAN)
        step = previous.next_step or {}
        if step.get("kind", "auction") != "auction":
            raise ListingDone(f"The ladder moved on to {step.get('kind')}")
        floor = step.get("start_price_floor_fen") or rules.percent_of(
            previous.terms["start_price_fen"], rules.LATER_ROUND_FLOOR_PERCENT
        )
        return _ceil_to(int(floor), 1_000 * YUAN)  # the lowest legal start: the 20 % step down shows

    def _opening(self, listing: Row[Any], previous: Row[Any] | None, now: datetime) -> datetime:
        s = self.settings
        soonest = now + timedelta(seconds=self.lead_seconds)
        published: datetime | None = listing.published_at
        if previous is None and published is not None:
            return max(soonest, published + timedelta(seconds=s.min_notice_seconds + 1))
        return max(soonest, now + timedelta(seconds=s.min_reauction_notice_seconds + 1))

    async def _priority_holders(self, conn: AsyncConnection, listing_id: int) -> list[int]:
        regs = [a.registration_no for a in await lstore.listing_asset_rows(conn, listing_id)]
        keys = [PRIORITY_HOLDERS[r] for r in regs if r in PRIORITY_HOLDERS]
        return [self.parties.buyers[k].org_id for k in keys]

    async def _new_lot(self, conn: AsyncConnection) -> int:
        """Every demo listing is taken: a demo bank registers, pledges and lists one more lot."""
        bank_key = self.rng.choice(sorted(MORE_LOTS))
        kind, title, title_en, holder, appraisal, classes = self.rng.choice(MORE_LOTS[bank_key])
        bank, today = self.parties.banks[bank_key], clock.today_cst()
        reg_no = _registration_no(kind, self.rng)
        spec = AssetSpec("new", bank_key, kind, reg_no, title, title_en, holder, appraisal, classes)
        spec = replace(
            spec,
            filed_on=(today - timedelta(days=700)).isoformat(),
            granted_on=(today - timedelta(days=400)).isoformat(),
            first_use_on=(today - timedelta(days=500)).isoformat(),
            appraised_days_ago=10,
        )
        asset = await lservices.create_asset(conn, bank, _asset_body(spec, today))
        loan = f"{bank_key.upper()}-{today:%Y%m%d}-{asset.row.id:05d}"
        claim = ClaimSpec(bank_key, loan, holder, appraisal, appraisal // 15, appraisal // 200, 120,
                          (("new", 1, (today - timedelta(days=365)).isoformat()),))  # fmt: skip
        await lservices.create_claim(conn, bank, _claim_body(claim, {"new": asset.row.id}, today))
        body = ListingSpec(bank_key, "transfer", ("new",), f"{title}转让", f"Transfer: {title_en}")
        made = await lservices.create_listing(conn, bank, _listing_body(body, {"new": asset.row.id}, {}))
        await lservices.publish_listing(conn, bank, made.row.id)
        log.info("demo: listed a new lot, listing %d %s", made.row.id, made.row.title)
        return int(made.row.id)


def _ceil_to(amount: int, step: int) -> int:
    return -(-amount // step) * step


def _registration_no(kind: str, rng: random.Random) -> str:
    year = clock.today_cst().year - 2
    digits = f"{rng.randrange(10**6, 10**7)}"
    match kind:
        case "invention_patent" | "utility_model" | "design_patent":
            kind_digit = {"invention_patent": 1, "utility_model": 2, "design_patent": 3}[kind]
            return f"ZL{year}{kind_digit}{digits}.{rng.randrange(10)}"
        case "software_copyright":
            return f"{year}SR{digits}"
        case _:
            return digits + f"{rng.randrange(10)}"


async def _last_round(conn: AsyncConnection, listing_id: int) -> Row[Any] | None:
    q = select(auctions).where(auctions.c.listing_id == listing_id).order_by(auctions.c.round_no.desc())
    row: Row[Any] | None = (await conn.execute(q.limit(1))).first()
    return row


async def _active_ids(conn: AsyncConnection, parties: Parties) -> list[int]:
    """Demo auctions scheduled or live whose bidding has not ended, the longest to run first."""
    q = (
        select(auctions.c.id)
        .where(
            auctions.c.bank_org_id.in_(parties.bank_org_ids),
            auctions.c.status.in_(("scheduled", "live")),
            auctions.c.ends_at > func.now(),
        )
        .order_by(auctions.c.ends_at.desc())
    )
    return [r.id for r in (await conn.execute(q)).all()]


async def top_up(
    engine: AsyncEngine, settings: Settings, *, rng: random.Random | None = None, lead_seconds: float = 3.0
) -> list[int]:
    """Schedule demo rounds until ``LIVE_TARGET`` are scheduled or live; the running ids (none unseeded)."""
    async with engine.connect() as conn:
        parties = await load_parties(conn)
    if parties is None:
        return []
    scheduler = Scheduler(engine, settings, parties, rng or random.Random(), lead_seconds=lead_seconds)
    return await scheduler.fill()


# --------------------------------------------------------------------------- bidding


@dataclass(frozen=True, slots=True)
class Open:
    """A demo auction open for bids, as read at ``now``."""

    id: int
    terms: rules.AuctionTerms
    state: rules.AuctionState
    now: datetime


def ceiling(auction_id: int, terms: rules.AuctionTerms) -> int:
    """How high the demo buyers go in this round: a fixed number of increments over the start."""
    steps = random.Random(auction_id * 7919 + terms.round_no).randint(6, 16)
    return terms.start_price_fen + steps * terms.increment_fen


def appetite(auction: Open) -> float:
    """The chance a demo buyer bids on this auction in a tick: first bids early, the rest near the end."""
    terms, state = auction.terms, auction.state
    price = state.current_price_fen
    if price is not None and price + terms.increment_fen > ceiling(auction.id, terms):
        return 0.0
    if state.bid_count == 0:
        return 1.0
    remaining = (state.ends_at - auction.now).total_seconds()
    return 0.9 if remaining <= terms.extension_seconds + 5 else 0.3


async def open_auctions(conn: AsyncConnection, parties: Parties) -> list[Open]:
    q = select(auctions.c.id, auctions.c.terms, auctions.c.state, func.now().label("now")).where(
        auctions.c.bank_org_id.in_(parties.bank_org_ids),
        auctions.c.status.in_(("scheduled", "live")),
        auctions.c.ends_at > func.now(),
    )
    found = [
        Open(r.id, store.terms_from_dict(r.terms), rules.state_from_dict(r.state), r.now)
        for r in (await conn.execute(q)).all()
    ]
    return [a for a in found if rules.is_open(a.state, a.now)]


@dataclass
class Bidders:
    """The demo buyers: one bid per tick on an auction picked by ``appetite``."""

    engine: AsyncEngine
    settings: Settings
    parties: Parties
    rng: random.Random
    proxy_share: float = 0.25
    idle: bool = True  # no demo auction was open at the last tick

    async def tick(self) -> services.BidAck | None:
        async with self.engine.connect() as conn:
            candidates = [(a, appetite(a)) for a in await open_auctions(conn, self.parties)]
        self.idle = not candidates
        candidates = [(a, w) for a, w in candidates if w > 0]
        if not candidates:
            return None
        auction, weight = self.rng.choices(candidates, weights=[w for _, w in candidates])[0]
        if self.rng.random() >= weight:
            return None
        try:
            return await run_in_transaction(self.engine, lambda conn: self._bid(conn, auction.id))
        except MarketError as exc:
            log.info("demo: a bid on auction %d was refused (%s: %s)", auction.id, exc.code, exc.detail)
            return None

    async def _bid(self, conn: AsyncConnection, auction_id: int) -> services.BidAck | None:
        locked = await store.lock(conn, auction_id)  # the bid below re-locks the same row: consistent reads
        terms, state = locked.terms, locked.state
        if not rules.is_open(state, locked.now):
            return None
        reg = await self._bidder(conn, locked)
        if reg is None:
            return None
        top = ceiling(auction_id, terms)
        amount = self._amount(terms, state, reg.priority_rank, top)
        if amount is None:
            return None
        max_fen = None
        if self.rng.random() < self.proxy_share:
            max_fen = min(top, amount + terms.increment_fen * self.rng.randint(2, 6))
            max_fen = max_fen if max_fen > amount else None
        actor = self.parties.buyer_of(reg.bidder_org_id)
        assert actor is not None
        ack = await services.place_bid(conn, actor, auction_id, amount, max_fen)
        self._log(auction_id, reg, ack, max_fen, extended=ack.ends_at > state.ends_at)
        return ack

    def _amount(
        self, terms: rules.AuctionTerms, state: rules.AuctionState, rank: int | None, top: int
    ) -> int | None:
        """The least legal bid, or a step or two above it, never above ``top``.

        A priority holder who outranks the leader matches the price exactly or bids a full increment.
        """
        minimum = rules.minimum_next_bid(terms, state, priority_rank=rank)
        raised = rules.minimum_next_bid(terms, state)
        steps = [minimum + terms.increment_fen * k for k in (0, 0, 0, 1, 1, 2)]
        legal = [a for a in steps if a <= top and not minimum < a < raised]
        return self.rng.choice(legal) if legal else None

    async def _bidder(self, conn: AsyncConnection, locked: store.Locked) -> Row[Any] | None:
        """A registered demo buyer other than the leader (registering one more when none is left)."""
        leader = locked.state.leader.bidder_id if locked.state.leader else None
        q = select(auction_registrations).where(
            auction_registrations.c.auction_id == locked.id, auction_registrations.c.deposit_status == "held"
        )
        regs = [r for r in (await conn.execute(q)).all() if self.parties.buyer_of(r.bidder_org_id)]
        free = [r for r in regs if r.bidder_org_id != leader]
        if free:
            return self.rng.choice(free)
        taken = {r.bidder_org_id for r in regs}
        others = [b for b in self.parties.buyers.values() if b.org_id not in taken]
        if not others:
            return None
        row, _ = await services.register(conn, self.rng.choice(others), locked.id, self.settings)
        return row

    def _log(
        self, auction_id: int, reg: Row[Any], ack: services.BidAck, max_fen: int | None, *, extended: bool
    ) -> None:
        proxy = f" (proxy maximum ¥{format_cny(max_fen)})" if max_fen else ""
        ends = f"; extended to {ack.ends_at.isoformat(timespec='seconds')}" if extended else ""
        price = format_cny(ack.price_fen) if ack.price_fen is not None else "-"
        log.info(
            "demo: auction %d paddle %s bid ¥%s%s -> price ¥%s, seq %d%s",
            auction_id, reg.paddle_no, format_cny(ack.amount_fen), proxy, price, ack.seq, ends,
        )  # fmt: skip


# --------------------------------------------------------------------------- the loop


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _try_lock(engine: AsyncEngine) -> AsyncConnection | None:
    """A connection holding the bidder lock (outside any transaction), or None if another holds it."""
    conn = await engine.connect()
    try:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        got = await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": BIDDER_LOCK_KEY})
    except BaseException:
        await conn.close()
        raise
    if got:
        return conn
    await conn.close()
    return None


async def _release(conn: AsyncConnection) -> None:
    try:
        await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": BIDDER_LOCK_KEY})
        await conn.close()
    except Exception:  # the session is gone, and its lock with it
        with contextlib.suppress(Exception):
            await conn.invalidate()


async def lock_holders(conn: AsyncConnection) -> list[int]:
    """Backend pids holding the bidder lock (at most one)."""
    q = text(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND classid = 0 AND objid = :k AND objsubid = 1"
    )
    return [int(r.pid) for r in (await conn.execute(q, {"k": BIDDER_LOCK_KEY})).all()]


def _visible_logs(settings: Settings) -> None:
    """Under uvicorn nothing configures the root logger; show the demo's info lines anyway."""
    if log.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    log.addHandler(handler)
    log.setLevel(getattr(logging, settings.log_level.upper(), logging.INFO))
    log.propagate = False


async def run_bidders(
    engine: AsyncEngine,
    settings: Settings,
    stop: asyncio.Event,
    *,
    pace: tuple[float, float] = (2.0, 6.0),
    retry_seconds: float = 10.0,
    rng: random.Random | None = None,
) -> None:
    """Drive the demo until ``stop``: keep ``LIVE_TARGET`` auctions going and bid every ``pace`` seconds.

    Only the holder of the bidder lock drives; every other caller checks again each ``retry_seconds``.
    """
    _visible_logs(settings)
    rng = rng or random.Random()
    waiting_said = False
    while not stop.is_set():
        conn = None
        try:
            conn = await _try_lock(engine)
            if conn is not None:
                log.info("demo: this process (pid %d) drives the demo bidders", os.getpid())
                await _drive(engine, settings, stop, conn, pace, rng)
            elif not waiting_said:
                log.info(
                    "demo: another process drives the demo bidders; pid %d checks every %gs",
                    os.getpid(),
                    retry_seconds,
                )
                waiting_said = True
        except Exception:
            log.exception("demo: the bidder loop failed; retrying in %gs", retry_seconds)
        finally:
            if conn is not None:
                await _release(conn)
        await _wait(stop, retry_seconds)


async def _drive(
    engine: AsyncEngine,
    settings: Settings,
    stop: asyncio.Event,
    lock_conn: AsyncConnection,
    pace: tuple[float, float],
    rng: random.Random,
) -> None:
    parties = (await seed(engine, settings)).parties
    scheduler = Scheduler(engine, settings, parties, rng)
    bidders = Bidders(engine, settings, parties, rng)
    while not stop.is_set():
        await lock_conn.execute(text("SELECT 1"))  # raises once the lock's session is gone
        await _step(scheduler.fill, "scheduling")
        await _step(bidders.tick, "bidding")
        await _wait(stop, min(1.0, pace[0]) if bidders.idle else rng.uniform(*pace))  # soon: rounds opening


async def _step(work: Callable[[], Any], what: str) -> None:
    try:
        await work()
    except MarketError as exc:
        log.info("demo: %s refused (%s: %s)", what, exc.code, exc.detail)
    except Exception:
        log.exception("demo: %s failed; carrying on", what)
