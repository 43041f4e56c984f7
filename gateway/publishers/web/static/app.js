/* bms-gateway dashboard: live state over Server-Sent Events, charts from /api/history.
   MIT, part of bms-gateway. No framework, no build step. */
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const fmt = (v, digits, unit) => (v === null || v === undefined ? "-" : Number(v).toFixed(digits) + (unit ? " " + unit : ""));
  const when = (iso) => {
    if (!iso) return "-";
    const d = new Date(iso);
    const ago = (Date.now() - d.getTime()) / 1000;
    const t = d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
    if (ago < 0) return t;
    if (ago < 90) return `${t} (${Math.round(ago)} s ago)`;
    if (ago < 5400) return `${t} (${Math.round(ago / 60)} min ago)`;
    if (ago < 172800) return `${t} (${Math.round(ago / 3600)} h ago)`;
    return `${t} (${Math.round(ago / 86400)} d ago)`;
  };

  let lastSeq = -1;
  let lastUpdate = 0;
  let source = null;
  let layout = "";
  let chartRange = 3600;
  const charts = [];

  // --- pack ------------------------------------------------------------------------------
  function renderPack(s, v) {
    $("title").textContent = "BMS " + (v.gateway_id || "gateway");
    document.title = `${fmt(s.soc, 0, "%")} · BMS ${v.gateway_id || ""}`;
    $("voltage").textContent = fmt(s.voltage, 2, "V");
    $("current").textContent = fmt(s.current, 1, "A");
    $("power").textContent = fmt(s.power, 0, "W");
    $("soc").textContent = fmt(s.soc, 1, "%");
    $("socfill").style.width = (s.soc || 0) + "%";
    $("cvl").textContent = fmt(s.limits.charge_voltage_limit, 2, "V");
    $("ccl").textContent = fmt(s.limits.charge_current_limit, 1, "A");
    $("dcl").textContent = fmt(s.limits.discharge_current_limit, 1, "A");
    $("humidity").textContent = fmt(s.humidity, 0, "%");
    $("energy").textContent = `${fmt(s.energy_in_kwh, 2)} / ${fmt(s.energy_out_kwh, 2)} kWh`;
    $("charge").textContent = `${fmt(s.charge_in_ah, 1)} / ${fmt(s.charge_out_ah, 1)} Ah`;
    $("cycles").textContent = fmt(s.cycles, 2);
    $("mode").textContent = s.mode;
    const why = Object.entries(v.limit_reasons || {}).map(([k, t]) => `${k.toUpperCase()}: ${t}`);
    $("limitwhy").textContent = why.join(" · ");
    $("updated").textContent = "updated " + new Date(s.timestamp).toLocaleTimeString();
  }

  // --- cells -----------------------------------------------------------------------------
  function cellClass(v, lim) {
    if (v === null || v === undefined) return "unknown";
    if ((lim.max != null && v > lim.max) || (lim.min != null && v < lim.min)) return "alarm";
    if ((lim.max_tolerant != null && v > lim.max_tolerant) || (lim.min_tolerant != null && v < lim.min_tolerant)) return "warn";
    return "ok";
  }

  function buildBoards(s, lim) {
    const root = $("boards");
    root.replaceChildren();
    for (const b of s.boards) {
      const box = el("div", { class: "board", "data-board": b.board });
      box.appendChild(el("h3", { class: "small" }, `Board ${b.board}`));
      const bars = el("div", { class: "bars" });
      const nums = el("div", { class: "cellnums" });
      b.cell_voltages.forEach((_, i) => {
        const c = el("div", { class: "cell", "data-board": b.board, "data-cell": i + 1 });
        c.appendChild(el("div", { class: "fill" }));
        bars.appendChild(c);
        nums.appendChild(el("span", {}, String(i + 1)));
      });
      for (const [key, cls] of [["max", ""], ["min", ""], ["max_tolerant", "tol"], ["min_tolerant", "tol"]]) {
        if (lim[key] != null) bars.appendChild(el("div", { class: "limitline " + cls, "data-limit": key }));
      }
      box.appendChild(bars);
      box.appendChild(nums);
      root.appendChild(box);
    }
  }

  function renderCells(s, v) {
    const lim = v.cell_limits || {};
    const key = s.boards.map((b) => `${b.board}:${b.cell_voltages.length}`).join(",");
    if (key !== layout) { buildBoards(s, lim); layout = key; }
    const known = s.boards.flatMap((b) => b.cell_voltages.filter((x) => x !== null));
    const lo = Math.min(lim.min ?? Infinity, ...known) - 0.05;
    const hi = Math.max(lim.max ?? -Infinity, ...known) + 0.05;
    const scale = (x) => Math.max(2, Math.min(100, ((x - lo) / (hi - lo)) * 100));
    let minCell = null, maxCell = null;
    for (const b of s.boards) {
      const bal = new Set(b.balancing);
      const box = document.querySelector(`.board[data-board="${b.board}"]`);
      if (!box) continue;
      box.querySelector("h3").textContent = `Board ${b.board}` + (b.online ? "" : " (offline)");
      b.cell_voltages.forEach((x, i) => {
        const c = box.querySelector(`.cell[data-cell="${i + 1}"]`);
        const cls = ["cell", cellClass(x, lim)];
        if (bal.has(i + 1)) cls.push("balancing");
        if (x !== null && x === s.cell_voltage_min && !minCell) { cls.push("min"); minCell = [b.board, i + 1, x]; }
        if (x !== null && x === s.cell_voltage_max && !maxCell) { cls.push("max"); maxCell = [b.board, i + 1, x]; }
        c.className = cls.join(" ");
        c.title = `board ${b.board} cell ${i + 1}: ${fmt(x, 3, "V")}` + (bal.has(i + 1) ? " (balancing)" : "");
        c.firstChild.style.height = x === null ? "100%" : scale(x) + "%";
      });
      for (const line of box.querySelectorAll(".limitline")) {
        const val = lim[line.dataset.limit];
        line.style.bottom = scale(val) + "%";
        line.title = `${line.dataset.limit.replace("_", " ")} ${val} V`;
      }
    }
    const name = (c) => (c ? `board ${c[0]} cell ${c[1]} (${c[2].toFixed(3)} V)` : "-");
    $("cellsummary").textContent = `lowest: ${name(minCell)} · highest: ${name(maxCell)} · spread ${fmt(s.cell_voltage_delta, 3, "V")}` +
      ` · limits ${fmt(lim.min, 2)}…${fmt(lim.max, 2)} V`;
  }

  // --- temperatures ----------------------------------------------------------------------
  function renderTemps(s) {
    const root = $("temps");
    root.replaceChildren();
    const top = el("p", { class: "small" },
      `coldest ${fmt(s.temperature_min, 1, "°C")} · hottest ${fmt(s.temperature_max, 1, "°C")} · humidity ${fmt(s.humidity, 0, "%")}`);
    root.appendChild(top);
    for (const b of s.boards) {
      root.appendChild(el("div", { class: "small" }, `Board ${b.board} (board ${fmt(b.board_temperature, 1, "°C")})`));
      const row = el("div", { class: "temps" });
      b.temperatures.forEach((t, i) => row.appendChild(el("span", { title: `sensor ${i + 1}` }, `${i + 1}: ${fmt(t, 1, "°C")}`)));
      root.appendChild(row);
    }
  }

  // --- relays, outputs, inputs, indicators ----------------------------------------------
  const human = (s) => s.replaceAll("_", " ");
  function renderSwitches(v) {
    const body = $("switches").tBodies[0];
    body.replaceChildren();
    for (const sw of v.switches) {
      const tr = el("tr", { "data-key": sw.key });
      const fn = sw.function && sw.function !== "none" ? ` (${human(sw.function)})` : "";
      tr.appendChild(el("td", {}, `${sw.kind[0].toUpperCase() + sw.kind.slice(1)} ${sw.number}${fn}`));
      const st = el("td", { class: "state" });
      st.appendChild(el("span", { class: "dot " + (sw.on ? "on" : "off") }));
      st.appendChild(document.createTextNode(sw.state));
      tr.appendChild(st);
      tr.appendChild(el("td", { class: "why" }, sw.reason));
      tr.appendChild(el("td", { class: "small muted" }, when(sw.since)));
      body.appendChild(tr);
    }
    const ind = $("indicators").tBodies[0];
    ind.replaceChildren();
    for (const i of v.indicators) {
      const tr = el("tr", { "data-key": i.name });
      const st = el("td", { class: "state" });
      st.appendChild(el("span", { class: "dot " + i.pattern }));
      st.appendChild(document.createTextNode(i.name));
      tr.appendChild(st);
      tr.appendChild(el("td", { class: "why" }, i.reason));
      tr.appendChild(el("td", { class: "small muted" }, when(i.since)));
      ind.appendChild(tr);
    }
  }

  // --- errors ----------------------------------------------------------------------------
  function renderErrors(v) {
    const ul = $("errors");
    ul.replaceChildren();
    if (!v.errors.length) { ul.appendChild(el("li", { class: "muted" }, "none")); return; }
    for (const e of v.errors) {
      const li = el("li", { "data-error": e.error });
      li.appendChild(el("b", {}, e.words));
      if (e.severity) li.appendChild(el("span", { class: "badge " + e.severity }, e.severity));
      if (e.latched) li.appendChild(el("span", { class: "badge latched" }, "latched"));
      if (e.detail) li.appendChild(el("div", { class: "small" }, e.detail));
      li.appendChild(el("div", { class: "small muted" }, "since " + when(e.since)));
      if (e.latched && v.allow_ack) {
        const b = el("button", { "data-ack": e.error }, "Acknowledge");
        b.onclick = () => ack(e.error, li);
        li.appendChild(b);
      }
      ul.appendChild(li);
    }
  }

  async function ack(name, li) {
    let token = sessionStorage.getItem("bmsgw_command_token");
    if (!token) token = window.prompt("Command token (commands.token) to acknowledge " + name);
    if (!token) return;
    try {
      const r = await fetch("api/ack", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ error: name, token }) });
      if (r.ok) sessionStorage.setItem("bmsgw_command_token", token); else sessionStorage.removeItem("bmsgw_command_token");
      const body = await r.json();
      li.appendChild(el("div", { class: "small" }, body.detail || body.error || "done"));
    } catch (err) {
      li.appendChild(el("div", { class: "small" }, "acknowledge failed: " + err));
    }
  }

  // --- events ----------------------------------------------------------------------------
  function describeEvent(e) {
    const rest = Object.entries(e).filter(([k]) => !["type", "seq", "timestamp"].includes(k))
      .map(([k, x]) => `${human(k)}: ${Array.isArray(x) ? x.map(String).map(human).join(", ") : human(String(x))}`);
    return `${human(e.type || "event")} — ${rest.join(" · ")}`;
  }
  function addEvent(e) {
    if (e.seq <= lastSeq) return;
    lastSeq = e.seq;
    const ul = $("events");
    const li = el("li", { "data-seq": e.seq });
    li.appendChild(el("span", { class: "small muted" }, `#${e.seq} ${new Date(e.timestamp).toLocaleString()} `));
    li.appendChild(document.createTextNode(describeEvent(e)));
    ul.insertBefore(li, ul.firstChild);
    while (ul.children.length > 50) ul.removeChild(ul.lastChild);
  }
  async function loadEvents() {
    try {
      const r = await fetch(lastSeq < 0 ? "api/events?limit=50" : `api/events?after_seq=${lastSeq}&limit=200`);
      if (!r.ok) return;
      const body = await r.json();
      if (body.last_seq < lastSeq) { lastSeq = -1; $("events").replaceChildren(); return loadEvents(); }
      body.events.forEach(addEvent);
    } catch (_) { /* the stream's reconnect retries */ }
  }

  // --- charts ----------------------------------------------------------------------------
  const CHARTS = [
    { title: "Pack voltage (V)", series: ["voltage"] },
    { title: "Current (A)", series: ["current"] },
    { title: "State of charge (%)", series: ["soc"] },
    { title: "Cell min / max (V)", series: ["cell_voltage_min", "cell_voltage_max"] },
    { title: "Temperature min / max (°C)", series: ["temperature_min", "temperature_max"] },
  ];
  const COLORS = ["#2f6fde", "#d92d20", "#2e9d5b", "#e0a100"];
  async function loadCharts() {
    const names = [...new Set(CHARTS.flatMap((c) => c.series))];
    const now = Date.now() / 1000;
    let body;
    try {
      const r = await fetch(`api/history?series=${names.join(",")}&from=${now - chartRange}&to=${now}`);
      body = await r.json();
      if (!r.ok) { $("charterror").textContent = body.error || "history unavailable"; return; }
    } catch (err) { $("charterror").textContent = "history unavailable"; return; }
    $("charterror").textContent = body.t.length ? "" : "no history yet in this range";
    const root = $("charts");
    if (typeof uPlot === "undefined") { $("charterror").textContent = "chart library missing"; return; }
    CHARTS.forEach((c, i) => {  // every box first, so the grid has its final columns
      if (root.children[i]) return;
      const box = el("div", { class: "chart" });
      box.appendChild(el("h3", { class: "small" }, c.title));
      root.appendChild(box);
    });
    CHARTS.forEach((c, i) => {
      const data = [body.t, ...c.series.map((n) => body.series[n])];
      const box = root.children[i];
      const width = Math.max(200, box.clientWidth - 4);
      if (charts[i]) { charts[i].setData(data); charts[i].setSize({ width, height: 160 }); return; }
      charts[i] = new uPlot({
        width, height: 160, legend: { show: c.series.length > 1 },
        series: [{}, ...c.series.map((n, k) => ({ label: human(n), stroke: COLORS[k], width: 1.5, spanGaps: false }))],
        axes: [{ stroke: "#888" }, { stroke: "#888", size: 50 }],
      }, data, box);
    });
    requestAnimationFrame(resizeCharts);  // once the grid has settled
  }
  function resizeCharts() {
    const root = $("charts");
    charts.forEach((c, i) => c.setSize({ width: Math.max(200, root.children[i].clientWidth - 4), height: 160 }));
  }
  window.addEventListener("resize", resizeCharts);
  for (const b of $("ranges").querySelectorAll("button")) {
    b.onclick = () => {
      chartRange = Number(b.dataset.range);
      for (const o of $("ranges").querySelectorAll("button")) o.classList.toggle("on", o === b);
      loadCharts();
    };
  }

  // --- live stream -------------------------------------------------------------------------
  function render(msg) {
    lastUpdate = Date.now();
    const s = msg.state, v = msg.view;
    renderPack(s, v);
    renderCells(s, v);
    renderTemps(s);
    renderSwitches(v);
    renderErrors(v);
  }
  function setLink(up) {
    const l = $("link");
    l.className = "link " + (up ? "up" : "down");
    l.textContent = up ? "live" : "reconnecting…";
  }
  function connect() {
    if (source) source.close();
    source = new EventSource("api/stream");
    source.onopen = () => { setLink(true); loadEvents(); };
    source.addEventListener("update", (ev) => { setLink(true); render(JSON.parse(ev.data)); });
    source.addEventListener("notice", (ev) => addEvent(JSON.parse(ev.data)));
    source.onerror = () => {
      setLink(false);
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
    };
  }
  // A stream that went silent (gateway killed, network gone) is replaced.
  setInterval(() => { if (lastUpdate && Date.now() - lastUpdate > 10000) { lastUpdate = 0; setLink(false); connect(); } }, 2000);
  setInterval(loadCharts, 60000);
  connect();
  loadCharts();
})();
