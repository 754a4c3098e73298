// Junction dashboard: a small hash-routed page over the admin API.
// Everything it shows comes from /api/v1 with the admin token.
"use strict";

const TOKEN_KEY = "junction.token";
const view = document.getElementById("view");
const flash = document.getElementById("flash");
let timers = [];

function token() { return localStorage.getItem(TOKEN_KEY) || ""; }

async function api(method, path, body) {
  const opts = { method, headers: { Authorization: "Bearer " + token() } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = body instanceof ArrayBuffer ? "application/wasm" : "application/json";
    opts.body = body instanceof ArrayBuffer ? body : JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  const data = await res.json().catch(() => ({}));
  if (res.status === 401) { showLogin(); throw new Error(data.error ? data.error.message : "unauthorized"); }
  if (!res.ok) throw new Error(data.error ? data.error.message : res.statusText);
  return data;
}

function say(text, error) {
  flash.textContent = text;
  flash.className = error ? "error" : "";
}

function esc(v) {
  return String(v === null || v === undefined ? "" : v)
    .replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function when(ms) { return ms ? new Date(ms).toLocaleString() : ""; }

function showLogin() {
  document.getElementById("login").hidden = false;
  view.innerHTML = "";
}

document.getElementById("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  localStorage.setItem(TOKEN_KEY, document.getElementById("token-input").value.trim());
  document.getElementById("login").hidden = true;
  route();
});

function every(ms, f) { f(); timers.push(setInterval(f, ms)); }

// --- Overview: job counts and a live throughput chart -------------------
async function overview() {
  view.innerHTML = `<h2>Overview</h2><div class="cards" id="counts"></div>
    <h3>Throughput (jobs finished per second, last 2 minutes)</h3>
    <canvas id="chart" width="720" height="180"></canvas>
    <h3>Nodes</h3><table id="nodes-table"></table>`;
  const points = [];
  let last = null;
  every(2000, async () => {
    const s = await api("GET", "/api/v1/status");
    document.getElementById("node").textContent = `node ${s.node} · v${s.version}`;
    const jobs = s.jobs;
    document.getElementById("counts").innerHTML = ["pending", "enqueued", "started", "wait_dependencies", "done", "failed", "cancelled"]
      .map((k) => `<div class="card"><span class="muted">${k.replace("_", " ")}</span><b class="state-${k}">${jobs[k] || 0}</b></div>`).join("");
    const finished = (jobs.done || 0) + (jobs.failed || 0);
    if (last) points.push(Math.max(0, (finished - last.finished) / ((s.now - last.now) / 1000)));
    last = { finished, now: s.now };
    if (points.length > 60) points.shift();
    draw(document.getElementById("chart"), points);
    const nodes = await api("GET", "/api/v1/nodes");
    const table = document.getElementById("nodes-table");
    if (table) {
      table.innerHTML = `<tr><th>Node</th><th>Status</th><th>Jobs held</th><th>Version</th><th>Host</th><th>Started</th><th>Last heartbeat</th></tr>` +
        nodes.items.map((n) => `<tr><td>${esc(n.name)}</td><td class="${n.status === "alive" ? "good" : n.status === "lost" ? "bad" : "muted"}">${n.status}</td>
          <td>${n.running}</td><td>${esc(n.version)}</td><td>${esc(n.host)}</td><td>${when(n.started_at)}</td><td>${when(n.heartbeat_at)}</td></tr>`).join("");
    }
  });
}

function draw(canvas, points) {
  if (!canvas) return;
  const g = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  g.clearRect(0, 0, w, h);
  const max = Math.max(1, ...points);
  g.fillStyle = "#6b7280";
  g.fillText(max.toFixed(1) + "/s", 4, 12);
  g.strokeStyle = "#2563eb";
  g.lineWidth = 2;
  g.beginPath();
  points.forEach((p, i) => {
    const x = (i / 59) * (w - 10) + 5;
    const y = h - 5 - (p / max) * (h - 25);
    if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
  });
  g.stroke();
}

// --- Backends: configuration, units, bound records, breaker, health -----
// An open breaker means the backend's jobs wait (see README, "Outages").
function breaker(b) {
  if (!b || b.state === "closed") return `<span class="good">closed</span>`;
  return `<span class="bad">${esc(b.state)}</span> since ${esc(when(b.opened_at))}, next probe ${esc(when(b.retry_at))}` +
    ` (${esc(b.probes)} failed)<div class="reason">${esc(b.reason)}</div>`;
}

async function backends() {
  const list = await api("GET", "/api/v1/backends");
  view.innerHTML = `<h2>Backends</h2><table id="backends-table"><tr><th>Name</th><th>Kind</th><th>Base URL</th>
    <th>Adapter / mapper</th><th>Bound records</th><th>Breaker</th><th>Health</th><th>Jobs</th></tr>${list.items.map((b) => `
    <tr data-name="${esc(b.name)}"><td>${esc(b.name)}</td><td>${esc(b.config.kind)} ${esc(b.config.version)}</td>
    <td>${esc(b.config.base_url)}</td>
    <td>${b.units.error ? `<span class="bad">${esc(b.units.error)}</span>` : `${esc(b.units.adapter)} / ${esc(b.units.mapper)}`}</td>
    <td>${Object.entries(b.bindings).map(([m, n]) => `${esc(m)}: ${n}`).join("<br>")}</td>
    <td class="breaker">${breaker(b.breaker)}</td>
    <td class="health">checking…</td>
    <td>${b.paused ? `<span class="bad">paused</span> <button class="resume" data-name="${esc(b.name)}">Resume</button>`
      : `<button class="pause" data-name="${esc(b.name)}">Pause</button>`}</td></tr>`).join("")}</table>`;
  // A paused backend's jobs stay pending on every node; running ones finish.
  view.querySelectorAll("button.pause").forEach((btn) => btn.onclick = () =>
    act(() => api("POST", `/api/v1/backends/${encodeURIComponent(btn.dataset.name)}/pause`), "paused"));
  view.querySelectorAll("button.resume").forEach((btn) => btn.onclick = () =>
    act(() => api("POST", `/api/v1/backends/${encodeURIComponent(btn.dataset.name)}/resume`), "resumed"));
  for (const b of list.items) {
    api("POST", `/api/v1/backends/${encodeURIComponent(b.name)}/check`).then((r) => {
      const cell = view.querySelector(`tr[data-name="${CSS.escape(b.name)}"] .health`);
      if (cell) cell.innerHTML = r.ok ? `<span class="good">ok</span> ${esc(r.message)}` : `<span class="bad">failing</span> ${esc(r.message)}`;
    }).catch((e) => say(e.message, true));
  }
}

// --- Connectors: versions, what they request, install, activate, roll back
// A version that requests more than the active one (`beyond_active`) shows
// the difference and activates only with "Approve and activate".
async function connectors() {
  const list = await api("GET", "/api/v1/connectors");
  const requests = (c) => (c.requests || []).map((r) => `<div>${esc(r)}</div>`).join("") || "nothing";
  const action = (c) => {
    if (c.active) return `<button class="rollback" data-name="${esc(c.name)}">Roll back</button>`;
    const more = c.beyond_active || [];
    if (!more.length) return `<button class="activate" data-digest="${esc(c.digest)}">Activate</button>`;
    return `<div class="bad">requests more than the active version:</div>` +
      more.map((r) => `<div class="beyond">+ ${esc(r)}</div>`).join("") +
      `<button class="approve" data-digest="${esc(c.digest)}">Approve and activate</button>`;
  };
  view.innerHTML = `<h2>Connectors</h2>
    <form class="filters" id="install-form"><input type="file" id="install-file" accept=".wasm">
    <button class="primary" type="submit">Install and activate</button></form>
    <table id="connectors-table"><tr><th>Name</th><th>Version</th><th>Backend</th><th>Requests</th><th>Digest</th><th>Installed</th><th></th></tr>
    ${list.items.map((c) => `<tr><td>${esc(c.name)}</td><td>${esc(c.version)} ${c.active ? '<span class="good">active</span>' : ""}</td>
    <td>${esc(c.backend_kind)} ${esc(c.backend_versions)}</td><td class="requests">${requests(c)}</td><td><code>${esc(c.digest.slice(0, 19))}</code></td><td>${when(c.installed_at)}</td>
    <td>${action(c)}</td></tr>`).join("")}</table>`;
  const activate = (digest, approve) =>
    api("POST", `/api/v1/connectors/${encodeURIComponent(digest)}/activate${approve ? "?approve=true" : ""}`);
  view.querySelectorAll("button.activate").forEach((b) => b.onclick = () =>
    act(() => activate(b.dataset.digest, false), "activated"));
  view.querySelectorAll("button.approve").forEach((b) => b.onclick = () =>
    act(() => activate(b.dataset.digest, true), "approved and activated"));
  view.querySelectorAll("button.rollback").forEach((b) => b.onclick = () =>
    act(() => api("POST", "/api/v1/connectors/rollback", { name: b.dataset.name }), "rolled back"));
  document.getElementById("install-form").onsubmit = async (e) => {
    e.preventDefault();
    const f = document.getElementById("install-file").files[0];
    if (!f) return say("choose a .wasm file first", true);
    act(async () => api("POST", "/api/v1/connectors", await f.arrayBuffer()), "installed");
  };
}

async function act(f, done) {
  try {
    const r = await f();
    say(`${r.name || ("job " + (r.id || ""))} ${r.version || ""} ${done}`.replace(/\s+/g, " "));
  } catch (e) { say(e.message, true); }
  route();
}

// --- Jobs: filters, requeue, cancel --------------------------------------
async function jobs(params) {
  const q = new URLSearchParams(params);
  const list = await api("GET", "/api/v1/jobs?" + q.toString());
  const states = ["", "wait_dependencies", "pending", "enqueued", "started", "done", "failed", "cancelled"];
  view.innerHTML = `<h2>Jobs</h2>
    <form class="filters" id="job-filters">
      <label>State <select id="job-filter-state">${states.map((s) => `<option value="${s}" ${q.get("state") === s ? "selected" : ""}>${s || "any"}</option>`).join("")}</select></label>
      <label>Channel <input id="job-filter-channel" value="${esc(q.get("channel") || "")}" size="12"></label>
      <label>Backend <input id="job-filter-backend" value="${esc(q.get("backend") || "")}" size="10"></label>
      <button type="submit">Filter</button></form>
    <table id="jobs-table"><tr><th>Id</th><th>Function</th><th>Description</th><th>State</th><th>Tries</th><th>Channel</th><th>Error</th><th></th></tr>
    ${list.items.map((j) => `<tr data-id="${j.id}"><td><a href="#/jobs/${j.id}">${j.id}</a></td><td>${esc(j.function)}</td><td>${esc(j.description)}</td>
      <td class="state state-${j.state}">${j.state}</td><td>${j.tries}</td><td>${esc(j.channel)}</td><td>${esc(j.error_message)}</td>
      <td>${actions(j)}</td></tr>`).join("")}</table>
    ${list.next ? `<p><a href="#/jobs?${new URLSearchParams({ ...params, cursor: list.next })}">Older jobs →</a></p>` : ""}`;
  document.getElementById("job-filters").onsubmit = (e) => {
    e.preventDefault();
    const p = {};
    for (const k of ["state", "channel", "backend"]) {
      const v = document.getElementById("job-filter-" + k).value.trim();
      if (v) p[k] = v;
    }
    location.hash = "#/jobs?" + new URLSearchParams(p);
  };
  wireActions();
}

// What an operator may do with a job in its state (the queue's rules).
function actions(j) {
  const b = (cls, label) => `<button class="${cls}" data-id="${j.id}">${label}</button>`;
  const out = [];
  if (["failed", "cancelled"].includes(j.state)) out.push(b("requeue", "Requeue"));
  if (["wait_dependencies", "pending", "enqueued", "started"].includes(j.state)) out.push(b("cancel", "Cancel"));
  if (j.state === "failed") out.push(b("done", "Mark done"));
  return out.join(" ");
}

function wireActions() {
  for (const [cls, word] of [["requeue", "requeued"], ["cancel", "cancelled"], ["done", "marked done"]]) {
    view.querySelectorAll("button." + cls).forEach((b) => b.onclick = () =>
      act(() => api("POST", `/api/v1/jobs/${b.dataset.id}/${cls}`), word));
  }
}

// --- One job: arguments, logs, outbound HTTP audit, dependency graph ----
async function job(id) {
  const d = await api("GET", `/api/v1/jobs/${id}`);
  const j = d.job;
  const nodes = (rel) => d.graph.filter((g) => g.relation === rel)
    .map((g) => `<a class="node" href="#/jobs/${g.id}">#${g.id} ${esc(g.description || g.function)} <span class="state-${g.state}">${g.state}</span></a>`).join("");
  view.innerHTML = `<h2>Job ${j.id} <span id="job-state" class="state-${j.state}">${j.state}</span></h2>
    <p>${esc(j.description || j.function)} · tries ${j.tries}${j.max_retries ? "/" + j.max_retries : ""} · channel ${esc(j.channel)}
      · node ${esc(j.node)} · connector <code>${esc(j.connector_digest || "")}</code></p>
    ${j.error_message ? `<p class="bad">${esc(j.error_kind)}: ${esc(j.error_message)}</p>` : ""}
    ${j.result ? `<p>Result: ${esc(j.result)}</p>` : ""}
    <p id="job-actions">${actions(j)}</p>
    <h3>Dependencies</h3>
    <div class="graph" id="job-graph"><div class="col">${nodes("parent") || '<span class="muted">no parents</span>'}</div>→
      <div class="col"><span class="node self">#${j.id} ${esc(j.description || j.function)}</span></div>→
      <div class="col">${nodes("child") || '<span class="muted">no children</span>'}</div></div>
    <h3>Arguments</h3><pre>${esc(JSON.stringify(j.args, null, 2))}</pre>
    <h3>Log</h3><table id="job-log"><tr><th>Try</th><th>Level</th><th>Source</th><th>Message</th></tr>
      ${d.logs.map((l) => `<tr><td>${l.try_number}</td><td>${esc(l.level)}</td><td>${esc(l.source)}</td><td>${esc(l.message)}</td></tr>`).join("") || '<tr><td colspan="4" class="muted">the connector logged nothing</td></tr>'}</table>
    <h3>Outbound HTTP</h3><table id="job-audit"><tr><th>Try</th><th>Request</th><th>Status</th><th>Bytes in/out</th><th>ms</th></tr>
      ${d.audit.map((a) => `<tr><td>${a.try_number}</td><td>${esc(a.entry.method)} ${esc(a.entry.scheme)}://${esc(a.entry.host)}:${a.entry.port}${esc(a.entry.path)}</td>
        <td>${a.entry.denied ? `<span class="bad">denied: ${esc(a.entry.denied)}</span>` : esc(a.entry.status || a.entry.error)}</td>
        <td>${a.entry.response_bytes}/${a.entry.request_bytes}</td><td>${a.entry.duration_ms}</td></tr>`).join("") || '<tr><td colspan="5" class="muted">no outbound requests</td></tr>'}</table>`;
  wireActions();
  if (["pending", "enqueued", "started", "wait_dependencies"].includes(j.state)) {
    timers.push(setTimeout(() => route(), 1000));
  }
}

async function route() {
  timers.forEach((t) => { clearInterval(t); clearTimeout(t); });
  timers = [];
  if (!token()) return showLogin();
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = Object.fromEntries(new URLSearchParams(query || ""));
  try {
    if (path === "/backends") await backends();
    else if (path === "/connectors") await connectors();
    else if (path === "/jobs") await jobs(params);
    else if (path.startsWith("/jobs/")) await job(path.slice(6));
    else await overview();
  } catch (e) { say(e.message, true); }
}

window.addEventListener("hashchange", () => { say(""); route(); });
route();
