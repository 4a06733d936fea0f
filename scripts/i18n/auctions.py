"""UI text of the auction pages: the index, the live auction room (and its script) and the set-up form.

Symbolic keys name stable codes: ``auction_status.*``, ``deposit_status.*``, ``auction_kind.*``,
``next_step.*`` (what follows a failed round), ``auction_problem.*`` (the problems
``auctions.rules.validate_terms`` reports) and the ``error.*`` codes of auctions, bids and the
websocket protocol. Strings other modules already translate (``Listing``, ``Status``,
``error.generic`` …) are used from there, not repeated here.
"""

from __future__ import annotations

AUCTION_STATUSES = {
    "scheduled": ("Scheduled", "即将开始"),
    "live": ("Live", "正在进行"),
    "suspended": ("Suspended", "已暂缓"),
    "closed": ("Sold", "已成交"),
    "failed": ("Failed (no sale)", "已流拍"),
    "cancelled": ("Cancelled", "已中止"),
}
DEPOSIT_STATUSES = {
    "held": ("Held", "已冻结"),
    "released": ("Released", "已退还"),
    "applied": ("Applied to the price", "已抵作价款"),
    "forfeited": ("Forfeited", "已没收"),
}
KINDS = {
    "auction": ("Auction", "拍卖"),
    "fixed_price_sale": ("Fixed-price sale", "变卖"),
}
NEXT_STEPS = {
    "auction": ("Re-auction", "再次拍卖"),
    "fixed_price_sale": ("Fixed-price sale", "变卖"),
    "entrusted_acquisition": ("Sale to the backstop acquirer", "由兜底收购方收购"),
    "bank_takeover": ("Taken over by the bank in satisfaction of the claim", "由银行以物抵债"),
    "return_to_bank": ("Returned to the bank unsold", "未能处置，退回银行"),
}
PROBLEMS = {
    "start_price_not_positive": ("The starting price must be positive.", "起拍价须大于零。"),
    "increment_not_positive": ("The bid increment must be positive.", "加价幅度须大于零。"),
    "appraisal_not_positive": ("The appraised value must be positive.", "评估价值须大于零。"),
    "reserve_below_start": ("The reserve may not be below the starting price.", "保留价不得低于起拍价。"),
    "round_invalid": ("Rounds are numbered from 1.", "拍卖轮次从 1 开始。"),
    "start_below_appraisal_floor": (
        "A first round starts at no less than 70 % of the appraisal.",
        "第一次拍卖的起拍价不得低于评估价的 70%。",
    ),
    "previous_start_required": (
        "A re-auction needs the previous round's starting price.",
        "再次拍卖须以上一轮起拍价为依据。",
    ),
    "start_below_previous_round_floor": (
        "A re-auction starts at no less than 80 % of the previous round's starting price.",
        "再次拍卖的起拍价不得低于上一轮起拍价的 80%。",
    ),
    "fixed_price_sale_too_early": (
        "A fixed-price sale may open only after the second round failed.",
        "第二次拍卖流拍后方可变卖。",
    ),
    "fixed_price_below_floor": (
        "A fixed-price sale is at no less than 50 % of the appraisal.",
        "变卖价不得低于评估价的 50%。",
    ),
    "deposit_out_of_range": (
        "The deposit must be 5–20 % of the starting price.",
        "保证金须为起拍价的 5%–20%。",
    ),
    "bidding_window_too_short": ("The bidding window is too short.", "竞价时间过短。"),
    "fixed_price_period_too_long": ("A fixed-price sale lasts at most 60 days.", "变卖期限不得超过 60 日。"),
    "fixed_price_window_too_short": (
        "Bidding after a first bid in a fixed-price sale is too short.",
        "变卖中首次出价后的竞价时间过短。",
    ),
    "extension_too_short": ("The anti-sniping extension is too short.", "延时周期过短。"),
    "starts_in_past": ("Bidding cannot open in the past.", "竞价开始时间不能早于当前时间。"),
    "notice_too_short": (
        "The notice period before bidding opens is too short.",
        "拍卖公告期不足。",
    ),
    "reauction_too_late": (
        "A re-auction must open within 30 days of the failed round.",
        "再次拍卖须在流拍后 30 日内开始。",
    ),
    "appraisal_expired": ("The appraisal has expired; get a new one.", "评估报告已过有效期，请重新评估。"),
    "appraisal_too_old_for_sale": (
        "The sale must end within 6 months after the appraisal expires.",
        "拍卖须在评估报告有效期届满后 6 个月内结束。",
    ),
    "priority_rank_invalid": ("Priority ranks are numbered from 1.", "优先购买权顺位从 1 开始。"),
    "priority_holder_duplicate": ("A priority purchaser is listed twice.", "同一优先购买权人被重复列出。"),
    "priority_holder_is_consignor": (
        "The consigning bank and its related parties cannot hold a priority right.",
        "委托银行及其关联方不能作为优先购买权人。",
    ),
}
ERRORS = {
    "bid_too_low": ("The bid is below the minimum.", "出价低于最低应价。"),
    "auction_not_open": ("Bidding has not opened yet.", "竞价尚未开始。"),
    "auction_closed": ("Bidding has ended.", "竞价已结束。"),
    "auction_suspended": ("The auction is suspended.", "拍卖已暂缓。"),
    "auction_not_suspended": ("The auction is not suspended.", "拍卖未处于暂缓状态。"),
    "bidding_still_open": ("Bidding has not ended yet.", "竞价尚未结束。"),
    "already_leading": (
        "You already lead; to bid higher later, set a proxy maximum.",
        "您已是最高出价者；如需继续加价，请设置代理最高价。",
    ),
    "max_not_raised": (
        "A new proxy maximum must exceed your current one.",
        "新的代理最高价须高于当前的代理最高价。",
    ),
    "max_below_amount": ("The proxy maximum is below the bid.", "代理最高价低于出价。"),
    "deposit_required": (
        "Register and have the deposit held before bidding.",
        "请先报名并冻结保证金后再出价。",
    ),
    "consignor_may_not_bid": (
        "The consigning bank and its related parties may not bid.",
        "委托银行及其关联方不得竞买。",
    ),
    "not_priority_holder": (
        "You are not a confirmed priority purchaser of this auction.",
        "您不是本次拍卖经确认的优先购买权人。",
    ),
    "bidder_barred": ("Your organisation may not bid in this round.", "贵机构不得参与本轮竞买。"),
    "already_registered": ("You are already registered for this auction.", "您已报名参加本次拍卖。"),
    "rate_limited": ("Too many messages; slow down.", "操作过于频繁，请稍后再试。"),
    "request_id_required": ("The bid lacked a request number; try again.", "出价缺少请求编号，请重试。"),
    "id_reused": (
        "This request number was already used for a different bid.",
        "该请求编号已用于另一笔出价。",
    ),
    "invalid_json": ("The message could not be read.", "无法读取该消息。"),
    "invalid_message": ("The message could not be read.", "无法读取该消息。"),
    "unknown_type": ("The server did not understand the message.", "服务器无法识别该消息。"),
    "auction_not_found": ("No such auction.", "未找到该拍卖。"),
    "invalid_terms": ("The auction terms break the rules:", "拍卖条件不符合规则："),
    "listing_not_auctionable": (
        "This listing cannot start an auction now; publish it first.",
        "该挂牌项目目前不能开始拍卖，请先发布。",
    ),
    "licence_by_negotiation": (
        "A licence is agreed through offers on the listing, not auctioned.",
        "许可类挂牌项目通过报价磋商成交，不能拍卖。",
    ),
    "appraisal_missing": (
        "Every asset of the listing needs an appraisal before an auction.",
        "拍卖前，挂牌项目的每项资产都须有评估价值。",
    ),
    "below_backstop": (
        "With a backstop acquirer, bidding must start at least at the qualifying overbid.",
        "存在兜底收购方时，起拍价不得低于合格竞价（兜底价 + 分手费 + 一个加价幅度）。",
    ),
}

SYMBOLIC: dict[str, tuple[str, str]] = {
    **{f"auction_status.{k}": v for k, v in AUCTION_STATUSES.items()},
    **{f"deposit_status.{k}": v for k, v in DEPOSIT_STATUSES.items()},
    **{f"auction_kind.{k}": v for k, v in KINDS.items()},
    **{f"next_step.{k}": v for k, v in NEXT_STEPS.items()},
    **{f"auction_problem.{k}": v for k, v in PROBLEMS.items()},
    **{f"error.{k}": v for k, v in ERRORS.items()},
}

ZH: dict[str, str] = {
    **{key: zh for key, (_en, zh) in SYMBOLIC.items()},
    # index
    "Live and upcoming auctions": "正在进行和即将开始的拍卖",
    "Round": "轮次",
    "Current price (CNY)": "当前价（元）",
    "Starting price (CNY)": "起拍价（元）",
    "Bids": "出价次数",
    "Bidding opens": "竞价开始",
    "Bidding ends": "竞价结束",
    "No auction is live or scheduled.": "暂无正在进行或即将开始的拍卖。",
    # room
    "Auction room": "拍卖厅",
    "Round %(n)s": "第 %(n)s 轮",
    "Listing details": "标的详情",
    "Reason published by the platform:": "平台公布的原因：",
    "Current price": "当前价",
    "Leading paddle": "领先竞买号",
    "Bidding opens in": "距开始",
    "Time left": "剩余时间",
    "Bidding has ended; the result is being recorded": "竞价已结束，正在确认结果",
    "Time left when suspended": "暂缓时剩余时间",
    "Bidding has ended": "竞价已结束",
    "%(d)s d": "%(d)s 天",
    "The end moved to %(time)s.": "结束时间已延至 %(time)s。",
    "A bid of paddle %(paddle)s was cancelled by the platform: %(reason)s": "平台已撤销竞买号 %(paddle)s 的一次出价：%(reason)s",
    "You have been outbid: paddle %(paddle)s leads at %(price)s.": "您的出价已被超越：竞买号 %(paddle)s 以 %(price)s 领先。",
    "Place a bid": "出价",
    "Your bid (CNY)": "您的出价（元）",
    "Next valid amount:": "最低应价：",
    "Proxy maximum (optional, CNY)": "代理最高价（选填，元）",
    "The platform bids for you, one increment at a time, up to this maximum; nobody else sees it.": "平台按加价幅度逐次代您出价，直至该最高价；其他人看不到该价格。",
    "Bid": "出价",
    "Bid history": "出价记录",
    "Time of bid": "出价时间",
    "Paddle": "竞买号",
    "Bid (CNY)": "出价（元）",
    "No bids yet.": "暂无出价。",
    "(your paddle)": "（您的竞买号）",
    "proxy bid": "代理出价",
    "My deposit": "我的保证金",
    "My paddle": "我的竞买号",
    "Deposit": "保证金",
    "Deposit status": "保证金状态",
    "Sign in to register and bid.": "登录后即可报名竞买。",
    "Register to bid: a deposit of %(amount)s is held until the auction ends, and you bid under an anonymous paddle number.": "报名竞买：冻结保证金 %(amount)s 至拍卖结束，您将以匿名竞买号出价。",
    "Register and hold the deposit": "报名并冻结保证金",
    "Your organisation must be verified by the platform before it can register.": "贵机构须经平台认证后方可报名。",
    "Registration is closed.": "报名已截止。",
    "Only buyers register and bid.": "仅买方可报名竞买。",
    "Terms of this round": "本轮拍卖条件",
    "Starting price": "起拍价",
    "Bid increment": "加价幅度",
    "Anti-sniping extension": "延时周期",
    "%(n)s seconds": "%(n)s 秒",
    "Times are the platform's clock, in China Standard Time.": "时间以平台服务器时间为准（北京时间）。",
    # room script (web/static/auction.js)
    "Connecting…": "正在连接…",
    "Live updates on": "实时更新中",
    "Connection lost; reconnecting…": "连接中断，正在重新连接…",
    "Your bid of %(amount)s was accepted: you lead.": "您的出价 %(amount)s 已受理：您目前领先。",
    "Your bid of %(amount)s was accepted, but a proxy maximum outbid it at once.": "您的出价 %(amount)s 已受理，但随即被代理出价超越。",
    "Your proxy maximum is now %(amount)s; you still lead.": "您的代理最高价已调整为 %(amount)s，您仍然领先。",
    "Sending your bid…": "正在提交出价…",
    "Not connected: your bid will be sent when the connection is back.": "连接已断开：恢复连接后将自动提交您的出价。",
    "Enter an amount.": "请输入金额。",
    "Enter an amount in yuan, for example 1000 or 1000.50.": "请输入以元为单位的金额，例如 1000 或 1000.50。",
    "Amounts have at most two decimals (fen).": "金额最多两位小数（精确到分）。",
    "The proxy maximum must be at least your bid.": "代理最高价不得低于您的出价。",
    "The minimum bid is %(amount)s.": "最低应价为 %(amount)s。",
    # set-up
    "Auction set-up": "拍卖设置",
    "Legal floors": "法定底线",
    "Appraisal of the listing": "标的评估价",
    "Lowest starting price: 70 % of the appraisal": "最低起拍价：评估价的 70%",
    "Previous round's starting price": "上一轮起拍价",
    "Lowest starting price: 80 % of the previous round's": "最低起拍价：上一轮起拍价的 80%",
    "Deposit: 5–20 % of the starting price": "保证金：起拍价的 5%–20%",
    "Earliest opening": "最早开始时间",
    "The reserve may not be below the starting price. A bid in the last moments moves the end to the bid time plus the extension.": "保留价不得低于起拍价。临近结束时出价的，结束时间延至出价时间加延时周期。",
    "Recorded next step": "已记录的下一步",
    "Round %(n)s ended: %(status)s.": "第 %(n)s 轮结果：%(status)s。",
    "Lowest starting price": "最低起拍价",
    "Price": "价格",
    "Opens no earlier than": "最早开始于",
    "Opens no later than": "最晚开始于",
    "Sale period": "变卖期限",
    "%(days)s days": "%(days)s 日",
    "Acquirer (organisation number)": "收购方（机构编号）",
    "Prices": "价格",
    "Reserve (optional)": "保留价（选填）",
    "Leave the reserve empty to make it the starting price.": "保留价留空即等于起拍价。",
    "Bidding window (China Standard Time, UTC+8)": "竞价时间（北京时间，UTC+8）",
    "Anti-sniping extension (seconds)": "延时周期（秒）",
    "At least %(n)s seconds.": "不少于 %(n)s 秒。",
    "Kind of round": "本轮类型",
    "Priority purchasers": "优先购买权人",
    "Organisation numbers, highest rank first": "机构编号，按顺位由高到低",
    "Separated by commas; leave empty if there are none.": "用逗号分隔；没有则留空。",
    "Schedule the round": "发布本轮拍卖",
    "A round can be scheduled only for a published listing or after a failed round.": "只有已发布的挂牌项目或流拍后的项目才能安排拍卖。",
    "Rounds": "拍卖轮次",
    # form messages (web/pages_auctions.py)
    "Enter a date and time.": "请输入日期和时间。",
    "Enter organisation numbers separated by commas.": "请输入用逗号分隔的机构编号。",
}

EN: dict[str, str] = {key: en for key, (en, _zh) in SYMBOLIC.items()}
