// gridmap console: polls /api/cluster once a second and renders it. Plain JS, no dependencies.
"use strict";

const colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
const colorOf = {};
let nextColor = 0;

function color(id) {
  if (!(id in colorOf)) colorOf[id] = colors[nextColor++ % colors.length];
  return colorOf[id];
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}

function short(id) { return id.slice(0, 8); }

function last(a) { return a && a.length ? a[a.length - 1] : 0; }

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function renderMembers(c) {
  const rows = c.members.map(m => {
    const state = !m.alive ? "dead" : m.leaving ? "leaving" : m.error ? "unreachable" : "alive";
    const tr = el("tr", { "data-id": m.id, class: state },
      el("td", { class: "id" }, short(m.id) + (m.name ? " (" + m.name + ")" : "") + (m.local ? " *" : "")),
      el("td", {}, m.addr),
      el("td", { class: "role role-" + m.role }, m.role),
      el("td", { class: "state" }, state + (m.error ? ": " + m.error : "")),
      el("td", { class: "owned" }, m.partitionsOwned),
      el("td", { class: "backups" }, m.partitionsBackedUp),
      el("td", {}, m.migrationsIn + " / " + m.migrationsOut),
      el("td", {}, bytes(m.entryBytes)),
      el("td", {}, bytes(m.heapBytes)),
      el("td", {}, m.raftState + " t" + m.raftTerm),
      el("td", { class: "rate" }, Math.round(last(m.rates))));
    return tr;
  });
  fill(document.querySelector("#members tbody"), rows);
  const alive = c.members.filter(m => m.alive).length;
  document.getElementById("summary").textContent =
    `${alive} members alive, ${c.partitionCount} partitions, table epoch ${c.epoch}, ` +
    `${c.migrations} migrations in flight, ${c.lost.length} lost, ` + (c.safe ? "safe" : "NOT safe") +
    (c.leader ? `, coordinator ${short(c.leader)}` : ", no coordinator");
}

function renderChart(c) {
  const chart = document.getElementById("chart");
  const W = 600, H = 200, N = 300;
  const members = c.members.filter(m => m.alive && m.rates);
  let top = 10;
  for (const m of members) for (const r of m.rates) top = Math.max(top, r);
  const items = [];
  for (let i = 1; i <= 3; i++) {
    const y = H - (H * i) / 4;
    items.push(svg("line", { x1: 0, x2: W, y1: y, y2: y, stroke: "#eee" }));
    const t = svg("text", { x: 4, y: y - 2, "font-size": 10, fill: "#999" });
    t.textContent = Math.round((top * i) / 4) + "/s";
    items.push(t);
  }
  const legend = [];
  for (const m of members) {
    const rs = m.rates.slice(-N);
    const pts = rs.map((r, i) => `${(W * (N - rs.length + i)) / (N - 1)},${H - (H * r) / top}`).join(" ");
    items.push(svg("polyline", { points: pts, fill: "none", stroke: color(m.id), "stroke-width": 1.5,
      "data-member": m.id, "data-last": last(rs), "data-samples": rs.length }));
    const sw = el("span", { class: "swatch" });
    sw.style.background = color(m.id);
    legend.push(el("li", { "data-member": m.id }, sw, `${short(m.id)}: ${Math.round(last(rs))} ops/s`));
  }
  chart.replaceChildren(...items);
  document.getElementById("legend").replaceChildren(...legend);
}

function renderMaps(c) {
  fill(document.querySelector("#maps tbody"), c.maps.map(m => el("tr", { "data-map": m.name },
    el("td", {}, m.name),
    el("td", { class: "entries" }, m.entries),
    el("td", {}, m.backupEntries),
    el("td", {}, bytes(m.bytes + m.backupBytes)),
    el("td", {}, m.stored ? "yes" : "memory"),
    el("td", {}, m.dirty),
    el("td", {}, (m.oldestDirtyMs / 1000).toFixed(1) + " s"),
    el("td", {}, m.storeErrors + (m.lastError ? " (" + m.lastError + ")" : "")),
    el("td", {}, m.listenerMissed),
    el("td", {}, (m.ops && m.ops.get) || 0),
    el("td", {}, (m.ops && m.ops.put) || 0))));
  fill(document.querySelector("#topics tbody"), c.topics.map(t => el("tr", { "data-topic": t.name },
    el("td", {}, t.name), el("td", {}, t.published), el("td", {}, t.received), el("td", {}, t.subscribers))));
  fill(document.querySelector("#queues tbody"), c.queues.map(q => el("tr", { "data-queue": q.name },
    el("td", {}, q.name), el("td", {}, q.size), el("td", {}, q.backupSize))));
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const r = await fetch("api/cluster", { cache: "no-store" });
    if (!r.ok) throw new Error(r.status + " " + r.statusText);
    const c = await r.json();
    renderMembers(c);
    renderChart(c);
    renderMaps(c);
    document.getElementById("publish-send").disabled = !c.canWrite;
    status.textContent = "updated " + new Date(c.time).toLocaleTimeString() + (c.canWrite ? "" : " (read-only: no token configured)");
    document.body.dataset.updated = c.time;
  } catch (e) {
    status.textContent = "cannot reach the member: " + e.message;
  }
}

async function publish(ev) {
  ev.preventDefault();
  const out = document.getElementById("publish-status");
  const topic = document.getElementById("publish-topic").value.trim();
  const message = document.getElementById("publish-message").value;
  const token = document.getElementById("publish-token").value;
  out.className = "";
  out.textContent = "publishing…";
  try {
    const r = await fetch("api/topics/" + encodeURIComponent(topic) + "/publish", {
      method: "POST",
      headers: { "Authorization": "Bearer " + token, "Content-Type": "text/plain" },
      body: message,
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(r.status + ": " + (body.error || r.statusText));
    out.className = "ok";
    out.textContent = `published ${body.bytes} bytes to ${topic}`;
  } catch (e) {
    out.className = "error";
    out.textContent = "refused: " + e.message;
  }
}

// Refresh once a second, never more than one request at a time: a member that is slow to
// answer (it waits up to 2 s for the others) does not pile requests up.
async function loop() {
  const started = Date.now();
  await refresh();
  setTimeout(loop, Math.max(0, 1000 - (Date.now() - started)));
}

document.getElementById("publish").addEventListener("submit", publish);
loop();
