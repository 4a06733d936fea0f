/* The live auction room: state, countdown, bid history and bids over /ws/auctions/{id}.
 *
 * The page is rendered at one seq; this script connects with ?since=<that seq> and applies
 * every later event once (events at or below the last seq seen are dropped), reconnecting
 * with backoff and ?since=<last seq> after a drop. Every time shown is the SERVER's: the
 * snapshot's and each pong's server_time anchor a monotonic clock (performance.now), so a
 * wrong or changed client clock changes nothing. Amounts are integer fen throughout;
 * typed yuan are converted by string parsing, never through floating point.
 */
(function () {
  "use strict";

  var root = document.getElementById("auction-room");
  if (!root) return;
  var T = JSON.parse(document.getElementById("i18n").textContent);
  var $ = function (id) { return document.getElementById(id); };
  var data = root.dataset;

  var PING_MS = 15000;
  var PONG_TIMEOUT_MS = 10000;
  var MAX_BACKOFF_MS = 15000;
  var TERMINAL = { closed: true, failed: true, cancelled: true };
  var CST_MS = 8 * 3600 * 1000;

  // ------------------------------------------------------------------ text and amounts

  function fill(template, params) {
    return template.replace(/%\((\w+)\)s/g, function (_m, key) {
      return params[key] === undefined ? "" : String(params[key]);
    });
  }

  function intOrNull(text) {
    return text === undefined || text === "" ? null : Number(text);
  }

  /** Integer fen -> "1,234.56" by string operations only. */
  function formatFen(fen) {
    if (fen === null || fen === undefined) return "—";
    var negative = fen < 0;
    var digits = String(Math.abs(fen));
    while (digits.length < 3) digits = "0" + digits;
    var whole = digits.slice(0, -2).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return (negative ? "-" : "") + whole + "." + digits.slice(-2);
  }

  function cny(fen) {
    return fen === null || fen === undefined ? "—" : "¥" + formatFen(fen);
  }

  /** Fen -> "700000.00" to put back in an input. */
  function yuanInput(fen) {
    if (fen === null || fen === undefined) return "";
    var digits = String(fen);
    while (digits.length < 3) digits = "0" + digits;
    return digits.slice(0, -2) + "." + digits.slice(-2);
  }

  /** Typed yuan -> exact integer fen: split on ".", pad to two decimals, refuse more.
   *  Returns {fen} or {error: key}. Full-width digits, "¥" and thousands commas are accepted. */
  function parseYuan(text) {
    var s = String(text)
      .replace(/[０-９]/g, function (c) { return String.fromCharCode(c.charCodeAt(0) - 0xfee0); })
      .replace(/[．。]/g, ".")
      .replace(/[，,\s]/g, "")
      .replace(/^[¥￥]/, "");
    if (s === "") return { error: "empty" };
    var parts = s.split(".");
    if (parts.length > 2 || !/^\d+$/.test(parts[0]) || (parts.length === 2 && !/^\d*$/.test(parts[1]))) {
      return { error: "invalid_amount" };
    }
    var cents = parts.length === 2 ? parts[1] : "";
    if (cents.length > 2) return { error: "too_many_decimals" };
    while (cents.length < 2) cents += "0";
    var whole = parts[0].replace(/^0+(?=\d)/, "");
    if (whole.length > 15) return { error: "invalid_amount" };
    var fen = Number(whole + cents); // an integer string: exact below 2^53
    if (!Number.isSafeInteger(fen) || fen <= 0) return { error: "invalid_amount" };
    return { fen: fen };
  }

  // ------------------------------------------------------------------ the server's clock

  var clock = {
    offset: 0, // server epoch ms minus performance.now()
    rtt: Infinity,
    sync: function (serverIso, sentAt) {
      var server = Date.parse(serverIso);
      if (isNaN(server)) return;
      var now = performance.now();
      var rtt = sentAt === undefined ? null : now - sentAt;
      this.offset = server - (rtt === null ? now : sentAt + rtt / 2);
      if (rtt !== null) this.rtt = rtt;
    },
    now: function () { return performance.now() + this.offset; }
  };
  (function anchorToPageRender() {
    var nav = performance.getEntriesByType ? performance.getEntriesByType("navigation")[0] : null;
    var server = Date.parse(data.serverTime);
    if (isNaN(server)) return;
    clock.offset = server - (nav && nav.responseStart > 0 ? nav.responseStart : performance.now());
  })();

  function cstTime(ms) {
    var d = new Date(ms + CST_MS);
    var two = function (n) { return (n < 10 ? "0" : "") + n; };
    return d.getUTCFullYear() + "-" + two(d.getUTCMonth() + 1) + "-" + two(d.getUTCDate()) + " " +
      two(d.getUTCHours()) + ":" + two(d.getUTCMinutes()) + ":" + two(d.getUTCSeconds());
  }

  function duration(ms) {
    var total = Math.max(0, Math.floor(ms / 1000));
    var days = Math.floor(total / 86400);
    var rest = total % 86400;
    var two = function (n) { return (n < 10 ? "0" : "") + n; };
    var hms = two(Math.floor(rest / 3600)) + ":" + two(Math.floor(rest % 3600 / 60)) + ":" + two(rest % 60);
    return days > 0 ? fill(T.days, { d: days }) + " " + hms : hms;
  }

  // ------------------------------------------------------------------ state

  var state = {
    auctionId: data.auctionId,
    seq: Number(data.seq),
    status: data.status,
    price: intOrNull(data.price),
    leader: data.leader || null,
    startsAt: Date.parse(data.startsAt),
    endsAt: Date.parse(data.endsAt),
    increment: Number(data.increment),
    startPrice: Number(data.startPrice),
    minNext: intOrNull(data.minNext),
    bidCount: Number(data.bidCount),
    myPaddle: data.myPaddle || null,
    pausedMs: intOrNull(data.pausedMs),
    reason: data.reason || ""
  };
  var snapshotSeq = state.seq; // events at or below it are already in the snapshot's state
  var autoFilled = null; // the last amount this script put in the bid box

  // ------------------------------------------------------------------ rendering

  function setText(id, text) {
    var el = $(id);
    if (el) el.textContent = text;
  }

  function shownStatus() {
    if (state.status === "scheduled" && clock.now() >= state.startsAt) return "live";
    return state.status;
  }

  function renderState() {
    var status = shownStatus();
    var badge = $("auction-status");
    badge.textContent = T.status[status] || status;
    badge.dataset.status = status;
    badge.className = "status auction-status auction-status-" + status;
    setText("price-now", cny(state.price));
    setText("leader-paddle", state.leader || "—");
    setText("bid-count", String(state.bidCount));
    setText("ends-at", cstTime(state.endsAt));
    setText("starts-at", cstTime(state.startsAt));
    var reason = $("status-reason");
    if (reason) {
      var showReason = (status === "suspended" || status === "cancelled") && state.reason;
      reason.hidden = !showReason;
      setText("status-reason-text", state.reason);
    }
    var form = $("bid-form");
    if (form) {
      var closed = !!TERMINAL[status];
      Array.prototype.forEach.call(form.elements, function (el) { el.disabled = closed; });
      setText("min-next", cny(state.minNext));
      refillBidBox();
    }
    renderCountdown();
  }

  function renderCountdown() {
    var status = shownStatus();
    var label, text;
    if (TERMINAL[status]) {
      label = T.countdown.ended;
      text = "—";
    } else if (status === "suspended") {
      label = T.countdown.suspended;
      text = state.pausedMs === null ? "—" : duration(state.pausedMs);
    } else if (status === "scheduled") {
      label = T.countdown.scheduled;
      text = duration(state.startsAt - clock.now());
    } else {
      var left = state.endsAt - clock.now();
      label = left > 0 ? T.countdown.live : T.countdown.closing;
      text = duration(left);
    }
    var el = $("countdown");
    if (el.textContent !== text) el.textContent = text;
    el.dataset.remainingMs = String(Math.max(0, Math.round(
      status === "scheduled" ? state.startsAt - clock.now() : state.endsAt - clock.now())));
    setText("countdown-label", label);
    if (status !== $("auction-status").dataset.status) renderState();
  }

  /** Put the next valid amount in the bid box unless the viewer typed a higher one. */
  function refillBidBox() {
    var input = $("bid-amount");
    if (!input || state.minNext === null) return;
    var typed = parseYuan(input.value);
    var own = input.value !== "" && input.value !== autoFilled;
    if (own && typed.fen !== undefined && typed.fen >= state.minNext) return;
    if (own && document.activeElement === input) return;
    autoFilled = yuanInput(state.minNext);
    input.value = autoFilled;
  }

  function nextMinimum() {
    return state.price === null ? state.startPrice : state.price + state.increment;
  }

  function addHistoryRow(event) {
    var body = $("bid-history");
    if (!body || body.querySelector('tr[data-seq="' + event.seq + '"]')) return;
    var row = document.createElement("tr");
    row.dataset.seq = String(event.seq);
    var when = document.createElement("td");
    when.textContent = cstTime(Date.parse(event.at));
    var paddle = document.createElement("td");
    paddle.textContent = event.paddle_no;
    if (state.myPaddle && event.paddle_no === state.myPaddle) {
      var you = document.createElement("span");
      you.className = "you";
      you.textContent = " " + T.you;
      paddle.appendChild(you);
    }
    if (event.proxy) {
      var proxy = document.createElement("span");
      proxy.className = "badge";
      proxy.textContent = T.proxy;
      paddle.appendChild(document.createTextNode(" "));
      paddle.appendChild(proxy);
    }
    var amount = document.createElement("td");
    amount.className = "num";
    amount.textContent = formatFen(event.amount_fen);
    row.appendChild(when);
    row.appendChild(paddle);
    row.appendChild(amount);
    body.insertBefore(row, body.firstChild);
    var none = $("no-bids");
    if (none) none.hidden = true;
  }

  function addNotice(text) {
    var list = $("extension-notices");
    if (!list) return;
    var item = document.createElement("li");
    item.className = "notice";
    item.textContent = text;
    list.insertBefore(item, list.firstChild);
    while (list.children.length > 5) list.removeChild(list.lastChild);
  }

  function leadChanged(previousLeader) {
    var notice = $("outbid-notice");
    if (!notice || !state.myPaddle) return;
    if (state.leader === state.myPaddle) {
      notice.hidden = true;
    } else if (previousLeader === state.myPaddle && state.leader) {
      setText("outbid-text", fill(T.outbid, { paddle: state.leader, price: cny(state.price) }));
      notice.hidden = false;
    }
  }

  // ------------------------------------------------------------------ frames

  function onSnapshot(snap) {
    clock.sync(snap.server_time);
    var previousLeader = state.leader;
    state.status = snap.status;
    state.price = snap.current_price_fen;
    state.leader = snap.leader_paddle;
    state.startsAt = Date.parse(snap.starts_at);
    state.endsAt = Date.parse(snap.ends_at);
    state.increment = snap.increment_fen;
    state.startPrice = snap.start_price_fen;
    state.minNext = snap.minimum_next_bid_fen;
    state.bidCount = snap.bid_count;
    state.reason = snap.reason || "";
    if (snap.my_paddle) state.myPaddle = snap.my_paddle;
    if (snap.my_deposit_status) {
      var dep = $("my-deposit-status");
      if (dep && dep.dataset.status !== snap.my_deposit_status) {
        dep.dataset.status = snap.my_deposit_status;
        dep.textContent = T.deposit[snap.my_deposit_status] || snap.my_deposit_status;
      }
    }
    if (state.status !== "suspended") state.pausedMs = null;
    snapshotSeq = Math.max(snapshotSeq, snap.seq);
    leadChanged(previousLeader);
    renderState();
  }

  /** One event, applied once: history and notices always, state only past the snapshot. */
  function onEvent(event) {
    if (event.seq <= state.seq) return; // already shown
    state.seq = event.seq;
    var live = event.seq > snapshotSeq;
    var previousLeader = state.leader;
    switch (event.type) {
      case "bid":
        addHistoryRow(event);
        if (live) {
          state.price = event.amount_fen;
          state.leader = event.paddle_no;
          state.endsAt = Date.parse(event.ends_at);
          state.bidCount += 1;
          if (state.status === "scheduled") state.status = "live";
          state.minNext = nextMinimum();
        }
        break;
      case "extended":
        addNotice(fill(T.extended, { time: cstTime(Date.parse(event.ends_at)) }));
        if (live) state.endsAt = Date.parse(event.ends_at);
        break;
      case "suspended":
        state.pausedMs = event.remaining_seconds * 1000;
        if (live) {
          state.status = "suspended";
          state.reason = event.reason;
        }
        break;
      case "resumed":
        if (live) {
          state.startsAt = Date.parse(event.starts_at);
          state.endsAt = Date.parse(event.ends_at);
          state.status = state.bidCount ? "live" : "scheduled";
          state.reason = "";
          state.pausedMs = null;
        }
        addNotice(fill(T.extended, { time: cstTime(Date.parse(event.ends_at)) }));
        break;
      case "closed":
        if (live) {
          state.status = "closed";
          state.price = event.amount_fen;
          state.leader = event.paddle_no;
          state.minNext = null;
        }
        break;
      case "failed":
      case "cancelled":
        if (live) {
          state.status = event.type;
          state.reason = event.reason && event.type === "cancelled" ? event.reason : "";
          state.minNext = null;
        }
        break;
      case "bid_cancelled":
        // an operator voided a bid (and the automatic answers to it): strike them from the history
        var voided = 0;
        (event.cancelled_seqs || [event.cancelled_seq]).forEach(function (seq) {
          var row = document.querySelector('#bid-history tr[data-seq="' + seq + '"]');
          if (row && !row.classList.contains("voided")) {
            row.classList.add("voided");
            voided += 1;
          }
        });
        addNotice(fill(T.bid_cancelled, { paddle: event.paddle_no, reason: event.reason || "" }));
        if (live) {
          state.price = event.price_fen === undefined ? state.price : event.price_fen;
          state.leader = event.leader_paddle === undefined ? state.leader : event.leader_paddle;
          state.endsAt = Date.parse(event.ends_at);
          state.bidCount = Math.max(0, state.bidCount - voided);
          if (state.status === "live" || state.status === "scheduled") state.minNext = nextMinimum();
        }
        break;
      default:
        break; // max_raised and anything newer: only the seq moves
    }
    if (live) {
      leadChanged(previousLeader);
      renderState();
      if (TERMINAL[state.status]) refreshDeposit();
    }
  }

  /** Deposits are released or applied when the round ends; no event says so, the API does. */
  function refreshDeposit() {
    var dep = $("my-deposit-status");
    if (!dep || !window.fetch) return;
    fetch("/api/v1/auctions/" + encodeURIComponent(state.auctionId), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (body && body.my_deposit_status) {
          dep.dataset.status = body.my_deposit_status;
          dep.textContent = T.deposit[body.my_deposit_status] || body.my_deposit_status;
        }
      })
      .catch(function () { /* the next page load shows it */ });
  }

  // ------------------------------------------------------------------ bids

  var pending = {}; // request_id -> {amount, sent}

  function requestId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) { return (b < 16 ? "0" : "") + b.toString(16); }).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" + hex.slice(20);
  }

  function showMessage(kind, text, code) {
    var el = $("bid-message");
    if (!el) return;
    el.hidden = false;
    el.dataset.kind = kind;
    el.dataset.code = code || "";
    el.className = "bid-message bid-message-" + kind;
    el.textContent = text;
  }

  function sendBid(requestIdValue) {
    var bid = pending[requestIdValue];
    var frame = { type: "bid", amount_fen: bid.amount, request_id: requestIdValue };
    if (bid.max !== null) frame.max_fen = bid.max;
    if (socket.send(frame)) {
      bid.sent = true;
      showMessage("pending", T.sending);
    } else {
      showMessage("pending", T.queued);
    }
  }

  function onSubmit(e) {
    e.preventDefault();
    var amount = parseYuan($("bid-amount").value);
    if (amount.error) {
      showMessage("error", T[amount.error] || T.invalid_amount, "client_" + amount.error);
      return;
    }
    var max = null;
    var maxInput = $("bid-max");
    if (maxInput && maxInput.value.trim() !== "") {
      var parsed = parseYuan(maxInput.value);
      if (parsed.error) {
        showMessage("error", T[parsed.error] || T.invalid_amount, "client_" + parsed.error);
        return;
      }
      if (parsed.fen < amount.fen) {
        showMessage("error", T.max_below, "client_max_below");
        return;
      }
      max = parsed.fen;
    }
    var id = requestId();
    var raising = max !== null && !!state.myPaddle && state.leader === state.myPaddle;
    pending[id] = { amount: amount.fen, max: max, raising: raising, sent: false };
    sendBid(id);
  }

  function onAck(ack) {
    var bid = pending[ack.request_id];
    if (!bid) return;
    delete pending[ack.request_id];
    if (bid.raising && ack.leading) {
      showMessage("ack", fill(T.max_raised, { amount: cny(bid.max) }), "max_raised");
    } else {
      var text = ack.leading ? T.accepted_leading : T.accepted_outbid;
      showMessage("ack", fill(text, { amount: cny(ack.amount_fen) }), ack.leading ? "leading" : "outbid");
    }
    var maxInput = $("bid-max");
    if (maxInput) maxInput.value = "";
  }

  function onError(err) {
    if (err.request_id && pending[err.request_id]) delete pending[err.request_id];
    var text = T.errors[err.code] || T.errors.generic;
    if (err.code === "bid_too_low" && typeof err.minimum_fen === "number") {
      text += " " + fill(T.minimum, { amount: cny(err.minimum_fen) });
      state.minNext = Math.max(state.minNext || 0, err.minimum_fen);
      autoFilled = null;
      if ($("bid-amount")) $("bid-amount").value = "";
      renderState();
    }
    showMessage("error", text, err.code);
  }

  // ------------------------------------------------------------------ the socket

  var socket = {
    ws: null,
    attempt: 0,
    timer: null,
    pingTimer: null,
    pingSentAt: null,
    connect: function () {
      var self = this;
      clearTimeout(this.timer);
      var scheme = location.protocol === "https:" ? "wss:" : "ws:";
      var url = scheme + "//" + location.host + "/ws/auctions/" + encodeURIComponent(state.auctionId) +
        "?since=" + state.seq;
      connection(this.attempt ? "reconnecting" : "connecting");
      var ws;
      try {
        ws = new WebSocket(url);
      } catch (_e) {
        this.retry();
        return;
      }
      this.ws = ws;
      ws.onmessage = function (m) { self.receive(m.data); };
      ws.onclose = function () {
        if (self.ws !== ws) return;
        self.ws = null;
        clearInterval(self.pingTimer);
        self.retry();
      };
      ws.onerror = function () { /* onclose follows */ };
    },
    retry: function () {
      var self = this;
      connection("reconnecting");
      var base = Math.min(MAX_BACKOFF_MS, 500 * Math.pow(2, this.attempt));
      this.attempt += 1;
      this.timer = setTimeout(function () { self.connect(); }, base / 2 + Math.random() * base / 2);
    },
    send: function (frame) {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN || !this.ready) return false;
      this.ws.send(JSON.stringify(frame));
      return true;
    },
    ping: function () {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
      if (this.pingSentAt !== null && performance.now() - this.pingSentAt > PONG_TIMEOUT_MS) {
        this.ws.close(); // no pong: the socket is dead; onclose reconnects
        return;
      }
      if (this.pingSentAt === null) {
        this.pingSentAt = performance.now();
        this.ws.send(JSON.stringify({ type: "ping" }));
      }
    },
    receive: function (raw) {
      var msg;
      try { msg = JSON.parse(raw); } catch (_e) { return; }
      if (msg.type === "snapshot") {
        this.attempt = 0;
        this.ready = true;
        this.pingSentAt = null;
        clearInterval(this.pingTimer);
        var self = this;
        this.pingTimer = setInterval(function () { self.ping(); }, PING_MS);
        connection("open");
        onSnapshot(msg);
        this.ping(); // a round trip refines the clock offset
        Object.keys(pending).forEach(function (id) { sendBid(id); }); // same request_id: placed at most once
      } else if (msg.type === "pong") {
        if (this.pingSentAt !== null) clock.sync(msg.server_time, this.pingSentAt);
        this.pingSentAt = null;
        renderCountdown();
      } else if (msg.type === "ack") {
        onAck(msg);
      } else if (msg.type === "error") {
        onError(msg);
      } else if (typeof msg.seq === "number") {
        onEvent(msg);
      }
    },
    ready: false
  };

  function connection(name) {
    if (name !== "open") socket.ready = false;
    var el = $("connection");
    if (!el) return;
    el.dataset.state = name;
    el.textContent = T.connection[name] || "";
  }

  // ------------------------------------------------------------------ start

  var form = $("bid-form");
  if (form) form.addEventListener("submit", onSubmit);
  if ($("bid-amount")) autoFilled = $("bid-amount").value;
  renderState();
  setInterval(renderCountdown, 250);
  if (data.live === "1") {
    socket.connect();
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") {
        if (socket.ws) socket.ping(); else socket.connect();
      }
    });
    window.addEventListener("online", function () { if (!socket.ws) socket.connect(); });
  }
})();
