/* The rotation dashboard: poll the JSON snapshot, draw every panel with plain
   DOM and SVG. No library: the timeline is a Gantt chart no small charting
   library draws, and two line charts more are a few lines once its scales and
   axes exist; nothing to vendor or keep up to date, and the page works offline. */
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("dashboard-config").textContent);
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const root = document.getElementById("rotation");
  const SVG_NS = "http://www.w3.org/2000/svg";
  // Colour-blind-safe categorical palette (Okabe-Ito), then Tableau's.
  const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00",
    "#F0E442", "#8c564b", "#7f7f7f", "#17becf"];
  // Slice ends that are part of normal work; others are outlined in red.
  const NORMAL_ENDS = new Set(["deadline", "drained", "paused", "shutdown"]);
  const LABEL_WIDTH = 170;
  const ROW_HEIGHT = 24;
  const AXIS_HEIGHT = 20;
  const CHART_HEIGHT = 160;
  const TICKS = 6;
  const memberColours = new Map();
  const windows = [...root.querySelectorAll(".rot-window")].map((b) => Number(b.dataset.window));
  const asked = Number(new URLSearchParams(location.search).get("window"));
  let windowS = windows.includes(asked) ? asked : config.windowS;
  let lastData = null;
  let timer = null;

  /* ---- helpers ---- */

  function el(tag, attrs, ...children) {
    const svg = tag.startsWith("svg:");
    const node = svg ? document.createElementNS(SVG_NS, tag.slice(4)) : document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    node.append(...children.filter((child) => child !== null && child !== undefined));
    return node;
  }

  function colourOf(member) {
    if (!memberColours.has(member)) {
      memberColours.set(member, PALETTE[memberColours.size % PALETTE.length]);
    }
    return memberColours.get(member);
  }

  const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour12: false });
  const number = (n) => Number(n).toLocaleString();
  const percent = (x) => `${(100 * x).toFixed(1)}%`;

  function duration(seconds) {
    if (seconds < 1) return `${(seconds * 1000).toFixed(0)} ms`;
    if (seconds < 120) return `${seconds.toFixed(1)} s`;
    return `${(seconds / 60).toFixed(1)} min`;
  }

  function ago(t, now) {
    return `${duration(Math.max(0, now - t))} ago`;
  }

  /* ---- tables, updated in place so buttons survive a refresh ---- */

  function fillCell(cell, spec) {
    const s = spec !== null && typeof spec === "object" ? spec : { text: spec };
    cell.className = s.cls || "";
    cell.title = s.title || "";
    if (s.value !== undefined) cell.dataset.value = s.value;
    if (s.action) {
      let button = cell.querySelector("button");
      if (!button) cell.replaceChildren((button = el("button", { type: "button" })));
      Object.assign(button.dataset, { action: s.action }, s.data);
      button.textContent = s.label;
      return;
    }
    const swatch = s.colour && el("span", { class: "rot-swatch", style: `background:${s.colour}` });
    cell.replaceChildren(...[swatch, s.text ?? ""].filter(Boolean));
  }

  function syncRows(table, items, keyOf, cellsOf, emptyText, rowClass) {
    const body = table.tBodies[0];
    if (!items.length) {
      const columns = table.tHead.rows[0].cells.length;
      body.replaceChildren(el("tr", {}, el("td", { colspan: columns, class: "rot-muted", text: emptyText })));
      return;
    }
    const old = new Map([...body.rows].map((row) => [row.dataset.key, row]));
    items.forEach((item, index) => {
      const key = keyOf(item);
      const row = old.get(key) || el("tr", { "data-key": key });
      old.delete(key);
      row.className = rowClass ? rowClass(item) : "";
      const cells = cellsOf(item);
      while (row.cells.length > cells.length) row.deleteCell(-1);
      cells.forEach((spec, i) => fillCell(row.cells[i] || row.insertCell(), spec));
      if (body.rows[index] !== row) body.insertBefore(row, body.rows[index] || null);
    });
    old.forEach((row) => row.remove());
  }

  /* ---- panels ---- */

  function renderMembers(data) {
    syncRows(document.getElementById("members"), data.members || [], (m) => m.name, (m) => [
      { text: m.name, colour: colourOf(m.name) },
      m.hostname || "—",
      m.live ? m.lane || "idle" : "gone",
      { text: number(m.slices), cls: "num" },
      { text: number(m.messages), cls: "num" },
      { text: duration(m.busy_s), cls: "num" },
      m.last_heartbeat ? ago(m.last_heartbeat, data.now) : "—",
    ], data.members ? "No member is alive and none worked in this window." : "Members unknown: see the error above.");
  }

  function lastSlice(slice, now) {
    if (!slice) return "never";
    return `${slice.member}: ${slice.end_reason}, ${number(slice.messages)} msgs, ${ago(slice.ended_at, now)}`;
  }

  function renderLanes(data) {
    syncRows(document.getElementById("lanes"), data.lanes, (l) => l.lane, (l) => [
      l.group,
      l.topic,
      { text: String(l.partition), cls: "num" },
      { text: l.paused ? "paused" : "no", cls: "paused-flag" },
      { text: number(l.lag), cls: "num lag", value: l.lag },
      { text: number(l.next_offset), cls: "num" },
      { text: number(l.end_offset), cls: "num" },
      { text: l.holder === null ? "unknown" : l.holder || "—", colour: l.holder && colourOf(l.holder), cls: "holder" },
      lastSlice(l.last_slice, data.now),
      config.canChangeTopic
        ? { action: l.paused ? "resume" : "pause", data: { topic: l.topic }, label: l.paused ? "Resume topic" : "Pause topic" }
        : "",
    ], "No lanes yet: a topic's partitions become lanes.", (l) => (l.paused ? "paused" : ""));
  }

  function timeScale(data, left, width) {
    const start = data.now - data.window_s;
    return (t) => left + ((t - start) / data.window_s) * (width - left);
  }

  function timeAxis(data, x, top, left, width) {
    const step = data.window_s / TICKS;
    const ticks = el("svg:g", { class: "axis" });
    for (let t = Math.ceil((data.now - data.window_s) / step) * step; t <= data.now; t += step) {
      ticks.append(
        el("svg:line", { x1: x(t), x2: x(t), y1: 0, y2: top, class: "grid" }),
        el("svg:text", { x: x(t), y: top + 14, "text-anchor": "middle", text: clock(t) }),
      );
    }
    ticks.append(el("svg:line", { x1: left, x2: width, y1: top, y2: top }));
    return ticks;
  }

  function sliceBar(slice, x, y) {
    const x0 = Math.max(x(slice.start), LABEL_WIDTH);
    const width = Math.max(1, x(slice.end) - x0);
    const offsets = slice.first_offset === null ? "no message" : `offsets ${slice.first_offset}-${slice.last_offset}`;
    const tip = `${slice.member} on ${slice.lane}\n${clock(slice.start)} for ${duration(slice.end - slice.start)}\n` +
      `${number(slice.messages)} messages, ${offsets}\nended: ${slice.end_reason}`;
    const bar = el("svg:g", {},
      el("svg:rect", {
        x: x0, y: y + 2, width, height: ROW_HEIGHT - 4, fill: colourOf(slice.member),
        class: NORMAL_ENDS.has(slice.end_reason) ? "slice" : "slice abnormal",
        "data-member": slice.member, "data-lane": slice.lane, "data-reason": slice.end_reason,
      }, el("svg:title", { text: tip })));
    if (width > 48) {
      bar.append(el("svg:text", { x: x0 + 3, y: y + ROW_HEIGHT / 2 + 4, class: "bar-label", text: slice.end_reason }));
    }
    return bar;
  }

  function renderTimeline(data) {
    const box = document.getElementById("timeline");
    const used = new Set(data.timeline.slices.map((s) => s.lane));
    const lanes = data.lanes.map((l) => l.lane).filter((lane) => used.has(lane));
    document.getElementById("rot-truncated").hidden = !data.timeline.truncated;
    if (!lanes.length) {
      box.replaceChildren(el("p", { class: "rot-muted", text: "No slice ended in this window." }));
      return;
    }
    const width = box.clientWidth || 900;
    const height = lanes.length * ROW_HEIGHT;
    const x = timeScale(data, LABEL_WIDTH, width);
    const row = new Map(lanes.map((lane, i) => [lane, i * ROW_HEIGHT]));
    const svg = el("svg:svg", { width, height: height + AXIS_HEIGHT, viewBox: `0 0 ${width} ${height + AXIS_HEIGHT}` },
      timeAxis(data, x, height, LABEL_WIDTH, width),
      ...lanes.map((lane) => el("svg:text", { x: 0, y: row.get(lane) + ROW_HEIGHT / 2 + 4, text: lane })),
      ...data.timeline.slices.map((slice) => sliceBar(slice, x, row.get(slice.lane))));
    box.replaceChildren(svg);
    const members = [...new Set(data.timeline.slices.map((s) => s.member))].sort();
    document.getElementById("rot-legend").replaceChildren(
      ...members.map((m) => el("span", {}, el("span", { class: "rot-swatch", style: `background:${colourOf(m)}` }), m)),
      el("span", { class: "rot-muted", text: "red outline: error, lease lost or log lost" }));
  }

  function lineChart(box, data, series, format) {
    const width = box.clientWidth || 450;
    const left = 56;
    const values = series.flatMap((s) => s.points.map((p) => p[1])).filter((v) => v !== null);
    const top = Math.max(...values, 0) || 1;
    const x = timeScale(data, left, width);
    const y = (v) => CHART_HEIGHT - (v / top) * (CHART_HEIGHT - 8);
    const svg = el("svg:svg", { width, height: CHART_HEIGHT + AXIS_HEIGHT },
      timeAxis(data, x, CHART_HEIGHT, left, width),
      ...[0, top / 2, top].map((v) => el("svg:text", { x: left - 4, y: y(v) + 4, "text-anchor": "end", text: format(v) })));
    for (const s of series) {
      let path = "";
      s.points.forEach(([t, v], i) => {
        if (v === null) return;
        const gap = i === 0 || s.points[i - 1][1] === null;
        path += `${gap ? "M" : "L"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
        if (v > 0) svg.append(el("svg:circle", { cx: x(t), cy: y(v), r: 2.5, fill: s.colour },
          el("svg:title", { text: `${clock(t)} ${s.name}: ${format(v)}` })));
      });
      svg.prepend(el("svg:path", { d: path, class: "line", stroke: s.colour }));
    }
    const legend = el("div", { class: "rot-legend" },
      ...series.map((s) => el("span", {}, el("span", { class: "rot-swatch", style: `background:${s.colour}` }), s.name)));
    box.replaceChildren(legend, svg);
  }

  function renderSeries(data) {
    const mid = (b) => b.start + data.bucket_s / 2;
    const rate = (n) => n / data.bucket_s;
    lineChart(document.getElementById("throughput"), data, [
      { name: "succeeded", colour: PALETTE[2], points: data.throughput.map((b) => [mid(b), rate(b.succeeded)]) },
      { name: "dead", colour: PALETTE[5], points: data.throughput.map((b) => [mid(b), rate(b.dead)]) },
    ], (v) => `${v === 0 || v >= 10 ? Math.round(v) : v.toFixed(1)}/s`);
    lineChart(document.getElementById("latency"), data, ["p50", "p95", "p99"].map((p, i) => ({
      name: p, colour: PALETTE[i], points: data.throughput.map((b) => [mid(b), b.latency_s[p] ?? null]),
    })), duration);
  }

  function shareRow(share, note, colour) {
    const fill = `width:${(100 * share.share).toFixed(2)}%` + (colour ? `;background:${colour}` : "");
    return el("div", { class: "rot-share", "data-name": share.name },
      el("span", { text: share.name }),
      el("div", { class: "track" },
        el("div", { class: "fill", style: fill }),
        el("div", { class: "fair", style: `left:${(100 * share.fair_share).toFixed(2)}%`, title: `fair share ${percent(share.fair_share)}` })),
      el("span", { text: `${percent(share.share)} (fair ${percent(share.fair_share)})${note}` }));
  }

  function renderFairness(data) {
    const f = data.fairness;
    const index = (value) => (value === null ? "n/a" : value.toFixed(3));
    document.getElementById("fairness").replaceChildren(
      el("div", { class: "rot-jain", text: `Jain's index: lanes ${index(f.lanes_index)}, members ${index(f.members_index)}` }),
      el("p", { class: "rot-muted", text: "1 is perfectly fair against the weights; lanes counted only when they had a backlog (a slice ended at its deadline)." }),
      el("h3", { text: "Topics" }),
      ...(f.topics.length ? f.topics.map((s) => shareRow(s, `, weight ${s.weight}`)) : [el("p", { class: "rot-muted", text: "No slice in this window." })]),
      el("h3", { text: "Members" }),
      ...f.members.map((s) => shareRow(s, "", colourOf(s.name))));
  }

  function renderDead(data) {
    syncRows(document.getElementById("dead"), data.dead_tasks, (t) => t.uuid, (t) => [
      { text: t.uuid.slice(0, 8), title: t.uuid },
      t.topic,
      { text: String(t.attempts), cls: "num" },
      ago(t.finished_at, data.now),
      // A traceback's last line names the exception and its message.
      { text: t.error.trim().split("\n").pop(), title: t.error, cls: "wrap" },
      config.canChangeTask ? { action: "retry", data: { task: t.uuid }, label: "Retry" } : "",
    ], "No task died in this window.");
  }

  function renderErrors(messages) {
    document.getElementById("rot-errors").replaceChildren(...messages.map((m) => el("li", { text: m })));
  }

  function render(data) {
    lastData = data;
    renderMembers(data);
    renderLanes(data);
    renderTimeline(data);
    renderSeries(data);
    renderFairness(data);
    renderDead(data);
    renderErrors(Object.entries(data.errors).map(([panel, message]) => `${panel}: ${message}`));
  }

  /* ---- polling and actions ---- */

  async function getJson(url, options) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json", "X-CSRFToken": csrfToken }, ...options });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
    return body;
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const data = await getJson(`${config.dataUrl}?window=${windowS}`);
      render(data);
      root.dataset.refreshes = Number(root.dataset.refreshes) + 1;
      document.getElementById("rot-updated").textContent = `updated ${clock(data.now)}, every ${config.pollMs / 1000} s`;
    } catch (error) {
      renderErrors([`Could not refresh (${error.message}); retrying.`]);
    } finally {
      timer = setTimeout(refresh, config.pollMs);
    }
  }

  function actionUrl(button) {
    const { action, topic, task } = button.dataset;
    if (action === "retry") return config.retryUrl.replace("/TASK/", `/${encodeURIComponent(task)}/`);
    return config[`${action}Url`].replace("/TOPIC/", `/${encodeURIComponent(topic)}/`);
  }

  async function act(button) {
    const message = document.getElementById("rot-message");
    button.disabled = true;
    try {
      const body = await getJson(actionUrl(button), { method: "POST" });
      message.className = "ok";
      message.textContent = body.topic ? `Topic ${body.topic} is ${body.paused ? "paused" : "running"}.` : `Task ${body.task} is ${body.status} again.`;
    } catch (error) {
      message.className = "error";
      message.textContent = `${button.textContent} failed: ${error.message}`;
    } finally {
      button.disabled = false;
      refresh();
    }
  }

  function pickWindow(seconds) {
    windowS = seconds;
    for (const button of root.querySelectorAll(".rot-window")) {
      button.classList.toggle("active", Number(button.dataset.window) === seconds);
    }
    const url = new URL(location.href);
    url.searchParams.set("window", seconds);
    history.replaceState(null, "", url);
  }

  root.addEventListener("click", (event) => {
    const action = event.target.closest("button[data-action]");
    if (action) act(action);
    const choice = event.target.closest("button[data-window]");
    if (choice) {
      pickWindow(Number(choice.dataset.window));
      refresh();
    }
  });
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => lastData && render(lastData), 200);
  });
  pickWindow(windowS);
  refresh();
})();
