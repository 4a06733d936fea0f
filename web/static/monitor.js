/* The operator monitor: figures, two inline-SVG charts and the suspects table, kept live over
 * /ws/monitor without reloading the page.
 *
 * The page is rendered with one snapshot (also embedded as JSON in #monitor-data); the socket then
 * pushes a fresh snapshot on every auction NOTIFY (coalesced) and every second. Every element with
 * data-field="a.b.c" shows that path of the snapshot, formatted by data-format (int, cny, seconds,
 * time). Amounts are integer fen, formatted by string operations only. No external library: the
 * CSP is script-src 'self'.
 */
(function () {
  "use strict";

  var root = document.getElementById("monitor");
  if (!root) return;
  var T = JSON.parse(document.getElementById("monitor-i18n").textContent);
  var initial = JSON.parse(document.getElementById("monitor-data").textContent);
  var $ = function (id) { return document.getElementById(id); };
  var SVG = "http://www.w3.org/2000/svg";
  var CST_MS = 8 * 3600 * 1000;
  var PING_MS = 15000;
  var MAX_BACKOFF_MS = 15000;
  var updates = 0;

  // ------------------------------------------------------------------ formatting

  function fill(template, params) {
    return template.replace(/%\((\w+)\)s/g, function (_m, key) {
      return params[key] === undefined ? "" : String(params[key]);
    });
  }

  function formatFen(fen) {
    var negative = fen < 0;
    var digits = String(Math.abs(fen));
    while (digits.length < 3) digits = "0" + digits;
    var whole = digits.slice(0, -2).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    return (negative ? "-" : "") + whole + "." + digits.slice(-2);
  }

  function two(n) { return (n < 10 ? "0" : "") + n; }

  function cstTime(iso, withDate) {
    var ms = Date.parse(iso);
    if (isNaN(ms)) return "—";
    var d = new Date(ms + CST_MS);
    var hm = two(d.getUTCHours()) + ":" + two(d.getUTCMinutes());
    if (!withDate) return hm;
    return d.getUTCFullYear() + "-" + two(d.getUTCMonth() + 1) + "-" + two(d.getUTCDate()) + " " + hm +
      ":" + two(d.getUTCSeconds());
  }

  function format(value, kind) {
    if (value === null || value === undefined) return "—";
    switch (kind) {
      case "cny": return "¥" + formatFen(value);
      case "seconds": return fill(T.seconds, { n: value });
      case "time": return cstTime(value, true);
      default: return String(value);
    }
  }

  function lookup(data, path) {
    return path.split(".").reduce(function (obj, key) {
      return obj === null || obj === undefined ? undefined : obj[key];
    }, data);
  }

  // ------------------------------------------------------------------ figures and suspects

  function renderFields(snapshot) {
    var nodes = root.querySelectorAll("[data-field]");
    for (var i = 0; i < nodes.length; i++) {
      var node = nodes[i];
      var text = format(lookup(snapshot, node.dataset.field), node.dataset.format);
      if (node.textContent !== text) node.textContent = text;
    }
    root.dataset.generated = snapshot.generated_at;
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderSuspects(suspects) {
    var body = $("suspects-body");
    while (body.firstChild) body.removeChild(body.firstChild);
    suspects.forEach(function (s) {
      var row = document.createElement("tr");
      row.dataset.auction = s.auction_id;
      row.dataset.paddle = s.paddle_no || "";
      var link = el("a", "", fill(T.auction, { id: s.auction_id }));
      link.href = "/ops/auctions/" + s.auction_id;
      var cell = el("td");
      cell.appendChild(link);
      row.appendChild(cell);
      row.appendChild(el("td", "", s.paddle_no || "—"));
      var who = el("td", "", s.org_name + " ");
      who.appendChild(el("span", "muted", s.credit_code));
      row.appendChild(who);
      row.appendChild(el("td", "num", String(s.score)));
      var list = el("ul", "signals");
      s.signals.forEach(function (signal) {
        var item = el("li", "", (T.signals[signal.code] || signal.code) + " ");
        item.dataset.code = signal.code;
        item.appendChild(el("span", "muted", signal.points + "/" + signal.weight));
        list.appendChild(item);
      });
      var signals = el("td");
      signals.appendChild(list);
      row.appendChild(signals);
      body.appendChild(row);
    });
    $("no-suspects").hidden = suspects.length > 0;
  }

  // ------------------------------------------------------------------ charts (inline SVG)

  function svgEl(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clear(svg) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
  }

  function drawBids(points) {
    var svg = $("chart-bids");
    clear(svg);
    var left = 36, right = 8, top = 14, bottom = 26, width = 600, height = 220;
    var plotW = width - left - right, plotH = height - top - bottom;
    var max = Math.max(1, Math.max.apply(null, points.map(function (p) { return p.bids; })));
    var step = plotW / Math.max(points.length, 1);
    svg.appendChild(svgEl("line", { x1: left, y1: top + plotH, x2: width - right, y2: top + plotH, "class": "axis" }));
    svg.appendChild(svgEl("line", { x1: left, y1: top, x2: left, y2: top + plotH, "class": "axis" }));
    svg.appendChild(svgEl("text", { x: left - 4, y: top + 4, "text-anchor": "end" }, String(max)));
    svg.appendChild(svgEl("text", { x: left - 4, y: top + plotH, "text-anchor": "end" }, "0"));
    points.forEach(function (p, i) {
      var h = p.bids === 0 ? 1 : Math.max(2, plotH * p.bids / max);
      var x = left + i * step + 1;
      var bar = svgEl("rect", {
        x: x.toFixed(1), y: (top + plotH - h).toFixed(1), width: Math.max(1, step - 2).toFixed(1),
        height: h.toFixed(1), "class": p.bids === 0 ? "bar empty" : "bar"
      });
      bar.appendChild(svgEl("title", {}, cstTime(p.minute, false) + " · " + p.bids));
      svg.appendChild(bar);
      if (p.bids > 0) {
        svg.appendChild(svgEl("text", {
          x: (x + step / 2 - 1).toFixed(1), y: (top + plotH - h - 3).toFixed(1), "text-anchor": "middle", "class": "value"
        }, String(p.bids)));
      }
      if (i % 5 === 0 || i === points.length - 1) {
        svg.appendChild(svgEl("text", {
          x: (x + step / 2 - 1).toFixed(1), y: height - 8, "text-anchor": "middle"
        }, cstTime(p.minute, false)));
      }
    });
    svg.dataset.total = points.reduce(function (sum, p) { return sum + p.bids; }, 0);
  }

  function drawRecovery(banks) {
    var svg = $("chart-recovery");
    clear(svg);
    var shown = banks.slice(0, 8);
    if (!shown.length) {
      svg.appendChild(svgEl("text", { x: 300, y: 110, "text-anchor": "middle" }, T.no_banks));
      return;
    }
    var labelW = 150, barX = 160, barW = 330, rowH = Math.min(26, 200 / shown.length);
    shown.forEach(function (b, i) {
      var y = 10 + i * rowH;
      var rate = b.opening_fen > 0 ? Math.min(1, b.recovered_fen / b.opening_fen) : 0;
      var name = b.bank_name.length > 14 ? b.bank_name.slice(0, 13) + "…" : b.bank_name;
      svg.appendChild(svgEl("text", { x: labelW, y: y + rowH * 0.65, "text-anchor": "end", "class": "title" }, name));
      svg.appendChild(svgEl("rect", { x: barX, y: y + 3, width: barW, height: rowH - 6, "class": "track" }));
      var bar = svgEl("rect", {
        x: barX, y: y + 3, width: (barW * rate).toFixed(1), height: rowH - 6, "class": "fill"
      });
      bar.appendChild(svgEl("title", {}, "¥" + formatFen(b.recovered_fen) + " / ¥" + formatFen(b.opening_fen)));
      svg.appendChild(bar);
      svg.appendChild(svgEl("text", { x: barX + barW + 6, y: y + rowH * 0.65, "class": "value" },
        (rate * 100).toFixed(1) + " %"));
    });
  }

  function render(snapshot) {
    renderFields(snapshot);
    renderSuspects(snapshot.suspects || []);
    drawBids(snapshot.bids_per_minute || []);
    drawRecovery(snapshot.recovery_by_bank || []);
  }

  // ------------------------------------------------------------------ the socket

  var connection = $("monitor-connection");
  var backoff = 500;
  var pinger = null;

  function setConnection(state) {
    connection.dataset.state = state;
    connection.textContent = T.connection[state] || "";
  }

  function connect() {
    setConnection(backoff > 500 ? "reconnecting" : "connecting");
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(scheme + location.host + "/ws/monitor");
    ws.onopen = function () {
      backoff = 500;
      setConnection("open");
      pinger = setInterval(function () {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ping" }));
      }, PING_MS);
    };
    ws.onmessage = function (message) {
      var data;
      try { data = JSON.parse(message.data); } catch (_e) { return; }
      if (data.type !== "monitor") return;
      updates += 1;
      root.dataset.updates = String(updates);
      render(data);
    };
    ws.onclose = function () {
      if (pinger) clearInterval(pinger);
      pinger = null;
      setConnection("reconnecting");
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    };
  }

  render(initial);
  connect();
})();
