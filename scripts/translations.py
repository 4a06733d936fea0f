"""Source of the zh-CN and English catalogues: run to regenerate web/locale/*/messages.po.

Keep UI text here (English source -> Chinese); templates only call _("English source").
Symbolic keys (role.*, error.*) get an English text too.
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import write_po

ROOT = Path(__file__).resolve().parent.parent / "web" / "locale"

ZH: dict[str, str] = {
    "IP Disposal Marketplace": "知识产权质押处置平台",
    "Switch language": "English",
    "Sign out": "退出",
    "Sign in": "登录",
    "Amounts in CNY; times in China Standard Time.": "金额单位：人民币元；时间为北京时间。",
    "Turn defaulted pledged IP back into money": "让违约质押知识产权回笼为资金",
    "Banks list pledged patents, trademarks, copyrights, IC layouts and geographical indications for licence, transfer, bundling or entrusted acquisition; buyers bid in live auctions; proceeds settle back against the bank's claims.": "银行将质押的专利、商标、著作权、集成电路布图设计和地理标志以许可、转让、打包或委托收储方式挂牌处置；买方通过实时竞价参与拍卖；所得价款按债权顺序清偿银行债权。",
    "Banks": "银行",
    "Buyers": "买方",
    "Operators": "运营方",
    "Register claims and pledged IP, list it, set auction terms and see what each claim recovered.": "登记债权与质押知识产权，挂牌处置，设定拍卖条件，查看每笔债权的回收情况。",
    "Search listings, hold a deposit, bid live, pay and get the deposit back if you lose.": "检索挂牌项目，缴纳保证金，实时出价，成交付款；未竞得则退还保证金。",
    "Monitor every disposal live, intervene with a reason, read the audit trail and export reports.": "实时监控每一笔处置，附理由进行干预，查阅审计记录并导出报表。",
    "Too many failed attempts. Please wait and try again.": "失败次数过多，请稍后再试。",
    "Email or password is wrong.": "邮箱或密码错误。",
    "Email": "邮箱",
    "Password": "密码",
    "My account": "我的账户",
    "Organisation": "机构",
    "Role": "角色",
    "Verified": "认证状态",
    "Yes": "已认证",
    "Pending verification": "待审核",
    "Back to the home page": "返回首页",
    "role.bank": "银行",
    "role.buyer": "买方",
    "role.operator": "平台运营",
    "error.not_found": "未找到该页面或对象。",
    "error.forbidden": "您无权执行此操作。",
    "error.unauthenticated": "请先登录。",
    "error.csrf_failed": "表单已过期或并非来自本站，请刷新页面后重试。",
    "error.throttled": "请求过于频繁，请稍后再试。",
    "error.internal_error": "系统内部错误，操作未生效。",
    "error.validation_failed": "提交的内容有误。",
    "error.method_not_allowed": "不支持该请求方式。",
    "error.generic": "请求未能完成。",
}

EN: dict[str, str] = {
    "Switch language": "中文",
    "role.bank": "Bank",
    "role.buyer": "Buyer",
    "role.operator": "Platform operator",
    "error.not_found": "This page or object does not exist.",
    "error.forbidden": "You are not allowed to do this.",
    "error.unauthenticated": "Please sign in first.",
    "error.csrf_failed": "The form expired or was not sent by this site; reload the page and try again.",
    "error.throttled": "Too many requests; please wait and try again.",
    "error.internal_error": "Something went wrong on our side; nothing was changed.",
    "error.validation_failed": "Some of what you sent is invalid.",
    "error.method_not_allowed": "This request method is not supported here.",
    "error.generic": "The request could not be completed.",
}


def write(locale: str, messages: dict[str, str]) -> None:
    catalog = Catalog(locale=locale, project="ip-disposal-market", charset="utf-8")
    for msgid, msgstr in messages.items():
        catalog.add(msgid, msgstr)
    path = ROOT / locale / "LC_MESSAGES" / "messages.po"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        write_po(fh, catalog, width=0, omit_header=False, sort_output=True)


if __name__ == "__main__":
    write("zh_CN", ZH)
    write("en", EN)
