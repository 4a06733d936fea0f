"""UI text of the bulk import page (English source -> Chinese; English for symbolic keys).

Symbolic keys: ``import.problem.<code>`` labels each ``listings.importer.PROBLEM_CODES`` entry,
``import.error.<code>`` the upload errors of the page, ``error.import_*`` the API's error codes.
"""

from __future__ import annotations

PROBLEMS = {
    "unreadable": ("File cannot be read", "文件无法读取"),
    "too_large": ("Too large", "超出上限"),
    "too_many_rows": ("Too many rows", "行数过多"),
    "no_rows": ("No rows", "没有数据行"),
    "no_sheets": ("No data sheet", "没有数据工作表"),
    "unknown_column": ("Unknown column", "未知列"),
    "duplicate_column": ("Column appears twice", "列重复"),
    "missing_column": ("Column missing", "缺少列"),
    "no_header": ("Value without a column header", "该列没有表头"),
    "required": ("Required", "必填项为空"),
    "invalid": ("Invalid value", "取值无效"),
    "invalid_choice": ("Not one of the allowed values", "不是允许的取值"),
    "too_small": ("Too small", "数值过小"),
    "too_long": ("Too long", "内容过长"),
    "not_integer": ("Not a whole number", "不是整数"),
    "negative": ("Negative", "不能为负数"),
    "bad_date": ("Not a date", "日期无效"),
    "id_not_text": ("Id entered as a number", "编号被存为数值"),
    "not_applicable": ("Column does not apply to this record", "该列不适用于此类记录"),
    "duplicate": ("Duplicate", "重复记录"),
    "in_future": ("Date in the future", "日期晚于今天"),
    "unknown_claim": ("Unknown claim", "找不到该债权"),
    "unknown_asset": ("Unknown asset", "找不到该资产"),
    "asset_listed": ("Asset is listed", "资产正在挂牌"),
    "claim_not_open": ("Claim no longer open", "债权已不可修改"),
}
ERRORS = {
    "too_large": ("The file is larger than 20 MB.", "文件超过 20 MB。"),
    "no_file": ("Choose a CSV or XLSX file to upload.", "请选择要上传的 CSV 或 XLSX 文件。"),
}

ZH: dict[str, str] = {
    "Bulk import": "批量导入",
    "Bulk import of assets and claims": "批量导入资产与债权",
    "Upload a CSV or XLSX file with your assets, claims and pledges. Check it with a dry run first: every bad row is listed with its row number, and nothing is imported while any row is bad.": "上传包含资产、债权和质押的 CSV 或 XLSX 文件。请先试运行检查：每一条有误的行都会列出行号；只要有一行有误，就不会导入任何数据。",
    "Templates with an example of each record:": "模板（每类记录附一条示例）：",
    "XLSX template (with instructions)": "XLSX 模板（含填写说明）",
    "CSV template": "CSV 模板",
    "File (CSV or XLSX, at most 20 MB)": "文件（CSV 或 XLSX，不超过 20 MB）",
    "Dry run: check the file, import nothing": "试运行：只检查文件，不导入",
    "Upload": "上传",
    "Report": "检查报告",
    "Imported: %(rows)s rows in one transaction.": "导入完成：%(rows)s 行已在同一事务中导入。",
    "Dry run: no problems in %(rows)s rows. Untick the dry run and upload the file again to import it.": "试运行完成：%(rows)s 行均无问题。取消勾选“试运行”并再次上传该文件即可导入。",
    "%(count)s rows have problems; nothing was imported.": "%(count)s 行有问题，未导入任何数据。",
    "Record": "记录",
    "Created": "已新建",
    "Updated": "已更新",
    "Removed": "已移除",
    "To create": "将新建",
    "To update": "将更新",
    "To remove": "将移除",
    "Unchanged": "无变化",
    "Pledged assets": "质押资产",
    "Claims": "债权",
    "Pledges": "质押",
    "Problems": "问题",
    "Sheet": "工作表",
    "Row": "行号",
    "Column": "列",
    "Problem": "问题类型",
    "Details": "详细说明",
    "error.import_has_errors": "文件中有错误行，未导入任何数据。",
    "error.import_raced": "导入期间有债权状态发生变化，未导入任何数据，请重试。",
    **{f"import.problem.{code}": zh for code, (_en, zh) in PROBLEMS.items()},
    **{f"import.error.{code}": zh for code, (_en, zh) in ERRORS.items()},
}

EN: dict[str, str] = {
    "error.import_has_errors": "The file has bad rows; nothing was imported.",
    "error.import_raced": "A claim changed while the import ran; nothing was imported. Try again.",
    **{f"import.problem.{code}": en for code, (en, _zh) in PROBLEMS.items()},
    **{f"import.error.{code}": en for code, (en, _zh) in ERRORS.items()},
}
