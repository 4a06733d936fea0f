"""UI text of the statements and reports: pages (web/pages_statements.py) and the CSV/XLSX/PDF files
(listings.statements.*_tables). English source -> Chinese; English for symbolic keys.

Symbolic keys: ``statement_status.*`` (open, paid, finalized with shortfall), ``disposal_stage.*``
and ``disposal_source.*`` (codes of the disposals table), ``error.bank_not_found``. Generic words
already catalogued elsewhere (Total, Costs, Principal, Opening, Recovered, Outstanding, Price, …)
are used as they are and not repeated here.
"""

from __future__ import annotations

STATEMENT_STATUSES = {
    "open": ("Open", "未结清"),
    "paid": ("Paid in full", "已全额受偿"),
    "finalized": ("Finalized with shortfall", "处置终结（有未受偿余额）"),
}
STAGES = {
    "awaiting_payment": ("Awaiting payment", "待付款"),
    "in_escrow": ("In escrow (registry filing pending)", "资金监管中（待登记变更）"),
    "settled": ("Settled", "已结算"),
    "defaulted": ("Buyer defaulted", "买受人悔拍"),
    "licensed": ("Licensed", "已许可"),
    "none": ("No sale", "未成交"),
}
SOURCES = {
    "auction": ("Auction", "拍卖"),
    "negotiation": ("Negotiation", "协商"),
    "fixed_price": ("Fixed price", "一口价"),
    "entrusted_acquisition": ("Entrusted acquisition", "委托收储"),
}
ERRORS = {
    "bank_not_found": ("No such bank.", "未找到该银行。"),
}

SYMBOLIC: dict[str, tuple[str, str]] = {
    **{f"statement_status.{k}": v for k, v in STATEMENT_STATUSES.items()},
    **{f"disposal_stage.{k}": v for k, v in STAGES.items()},
    **{f"disposal_source.{k}": v for k, v in SOURCES.items()},
    **{f"error.{k}": v for k, v in ERRORS.items()},
}

ZH: dict[str, str] = {
    **{key: zh for key, (_en, zh) in SYMBOLIC.items()},
    # units appended to amount columns of the files
    "(CNY)": "（元）",
    "(fen)": "（分）",
    # claim statement
    "Claim statement": "债权受偿明细",
    "Claim statement %(loan_no)s": "债权受偿明细 %(loan_no)s",
    "As of": "截至",
    "As of (end of day, China Standard Time)": "截至日期（北京时间当日结束）",
    "As of: %(when)s (ledger entry %(entry)s)": "截至：%(when)s（账簿分录 %(entry)s）",
    "now": "当前",
    "Now": "当前",
    "Show": "查看",
    "ledger entry %(entry)s": "账簿分录 %(entry)s",
    "Bank": "银行",
    "Bank: %(bank)s": "银行：%(bank)s",
    "Borrower: %(name)s (%(code)s)": "借款人：%(name)s（%(code)s）",
    "Status: %(status)s": "状态：%(status)s",
    "Risk pool": "风险补偿资金池",
    "Pool compensation": "风险补偿",
    "Pool compensation (CNY)": "风险补偿（元）",
    "Pool compensation: %(amount)s": "风险补偿：%(amount)s 元",
    "Unsecured shortfall (CNY)": "未受偿余额（元）",
    "Unsecured shortfall: %(amount)s": "未受偿余额：%(amount)s 元",
    "Amounts by bucket": "分项金额",
    "Check": "核对",
    "passed": "通过",
    "FAILED": "不一致",
    "Check: opening = recovered + outstanding for every bucket: %(result)s": "核对：每一项原始金额 = 已回收 + 未清偿：%(result)s",
    "Postings to the claim": "债权入账明细",
    "Date": "日期",
    "Entry": "分录",
    "Lot": "标的",
    "Rank": "顺位",
    "Amount": "金额",
    "Memo": "摘要",
    "Nothing has been applied to this claim yet.": "该债权尚未获得任何清偿。",
    "Download CSV": "下载 CSV",
    "Download XLSX": "下载 XLSX",
    "Download PDF": "下载 PDF",
    "Back to the claim": "返回债权",
    "Enter the date as YYYY-MM-DD.": "请按 YYYY-MM-DD 格式输入日期。",
    # bank statement
    "Bank statement": "银行受偿对账单",
    "Recovered (CNY)": "已回收（元）",
    "Payout due (CNY)": "应付银行款项（元）",
    "Payout due = what was applied to your claims' buckets + pool compensation payable to you.": "应付银行款项 = 已分配至本行各项债权的金额 + 应付本行的风险补偿。",
    "Costs, interest and principal columns show what was recovered for each bucket.": "费用、利息、本金各列为该项已回收的金额。",
    # disposals report
    "Disposals report": "处置报表",
    "Disposals report %(period)s": "处置报表 %(period)s",
    "Period: %(start)s to %(end)s (China Standard Time)": "期间：%(start)s 至 %(end)s（北京时间）",
    "Generated at %(when)s": "生成时间：%(when)s",
    "Check: the totals equal the ledger's sums for these entries: %(result)s": "核对：合计数与账簿中相应分录的合计一致：%(result)s",
    "Totals agree with the ledger": "合计与账簿一致",
    "Totals differ from the ledger": "合计与账簿不一致",
    "First day": "起始日",
    "Last day": "截止日",
    "All banks": "全部银行",
    "This quarter": "本季度",
    "Last quarter": "上季度",
    "The period must end on or after its first day.": "截止日不得早于起始日。",
    "Days in China Standard Time. Figures are the ledger postings of each lot that took effect in the period.": "日期按北京时间计算；各项金额为各标的在该期间生效的账簿分录。",
    "Per bank": "按银行汇总",
    "Per bank (CNY)": "按银行汇总（元）",
    "Disposals": "处置明细",
    "Number of disposals": "处置笔数",
    "Disposals (CNY)": "处置明细（元）",
    "No disposals in this period.": "该期间没有处置记录。",
    "Disposal": "处置编号",
    "Source": "成交方式",
    "Stage": "阶段",
    "Received": "已收款",
    "Disposal costs": "处置费用",
    "Fees": "平台费及佣金",
    "To claims": "清偿债权",
    "Surplus to pledgors": "返还出质人余额",
}

EN: dict[str, str] = {key: en for key, (en, _zh) in SYMBOLIC.items()}
