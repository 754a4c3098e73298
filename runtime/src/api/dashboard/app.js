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
  if (res.status === 401) {
    // A wrong or rotated token: stop every poll (each would be one more
    // 401) and ask for the token again, saying why.
    stopTimers();
    localStorage.removeItem(TOKEN_KEY);
    showLogin("The server refused the admin token (401): enter the current one.");
    throw new Error("signed out: the admin token was refused");
  }
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

function showLogin(why) {
  const error = document.getElementById("login-error");
  error.textContent = why || "";
  error.hidden = !why;
  // The refused token is not left in the field to be sent again.
  if (why) document.getElementById("token-input").value = "";
  document.getElementById("login").hidden = false;
  document.getElementById("sign-out").hidden = true;
  view.innerHTML = "";
}

function stopTimers() {
  timers.forEach((t) => { clearInterval(t); clearTimeout(t); });
  timers = [];
}

document.getElementById("sign-out").addEventListener("click", () => {
  stopTimers();
  localStorage.removeItem(TOKEN_KEY);
  say("");
  showLogin();
});

document.getElementById("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  localStorage.setItem(TOKEN_KEY, document.getElementById("token-input").value.trim());
  document.getElementById("login").hidden = true;
  route();
});

// Poll `f` every `ms`; a failure is shown, and a 401 stops the polling.
function every(ms, f) {
  const run = () => f().catch((e) => say(e.message, true));
  run();
  timers.push(setInterval(run, ms));
}

// A table that scrolls inside its own box on a narrow screen.
function scroll(html) { return `<div class="scroll">${html}</div>`; }

function duration(from, to) {
  if (!from || !to) return "";
  const ms = to - from;
  if (ms < 1000) return ms + " ms";
  if (ms < 120000) return (ms / 1000).toFixed(1) + " s";
  if (ms < 7200000) return (ms / 60000).toFixed(1) + " min";
  return (ms / 3600000).toFixed(1) + " h";
}

const enc = encodeURIComponent;

// --- Overview: job counts and a live throughput chart -------------------
async function overview() {
  view.innerHTML = `<h2>Overview</h2><div class="cards" id="counts"></div>
    <p id="dead-line"></p>
    <h3>Throughput (jobs finished per second, last 2 minutes)</h3>
    <canvas id="chart" width="720" height="180"></canvas>
    <h3>Channels</h3>
    <form class="filters" id="channel-form"><input id="channel-name" placeholder="root.shop" size="16" required>
      <button type="submit">Pause channel</button></form>
    <div id="paused-channels"></div>`;
  document.getElementById("channel-form").onsubmit = (e) => {
    e.preventDefault();
    const name = document.getElementById("channel-name").value.trim();
    act(() => api("POST", `/api/v1/channels/${enc(name)}/pause`), "paused");
  };
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
    const dead = document.getElementById("dead-line");
    if (dead) {
      dead.innerHTML = s.dead_events ? `<a class="bad" href="#/events">${s.dead_events} dead events</a>: deliveries that failed for good`
        : `<span class="muted">no dead events</span>`;
    }
    const paused = document.getElementById("paused-channels");
    if (paused) {
      const names = s.paused.channels;
      paused.innerHTML = names.length ? names.map((n) => `<div>${esc(n)} <span class="bad">paused</span>
        <button class="resume-channel" data-name="${esc(n)}">Resume</button></div>`).join("")
        : `<span class="muted">no channel is paused</span>`;
      paused.querySelectorAll("button.resume-channel").forEach((b) => b.onclick = () =>
        act(() => api("POST", `/api/v1/channels/${enc(b.dataset.name)}/resume`), "resumed"));
    }
  });
}

// --- Nodes: every node on the database, alive, lost or stopped ----------
async function nodes() {
  view.innerHTML = `<h2>Nodes</h2><div id="nodes"></div>`;
  every(2000, async () => {
    const list = await api("GET", "/api/v1/nodes");
    const box = document.getElementById("nodes");
    if (!box) return;
    box.innerHTML = scroll(`<table id="nodes-table"><tr><th>Node</th><th>Status</th><th>Jobs held</th><th>Version</th><th>Host</th><th>Started</th><th>Last heartbeat</th></tr>` +
      list.items.map((n) => `<tr><td>${esc(n.name)}</td><td class="${n.status === "alive" ? "good" : n.status === "lost" ? "bad" : "muted"}">${esc(n.status)}</td>
        <td>${esc(n.running)}</td><td>${esc(n.version)}</td><td>${esc(n.host)}</td><td>${when(n.started_at)}</td><td>${when(n.heartbeat_at)}</td></tr>`).join("") + `</table>`);
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
function breaker(b, name) {
  if (!b || b.state === "closed") return `<span class="good">closed</span>`;
  return `<span class="bad">${esc(b.state)}</span> since ${esc(when(b.opened_at))}, next probe ${esc(when(b.retry_at))}` +
    ` (${esc(b.probes)} failed)<div class="reason">${esc(b.reason)}</div>` +
    `<button class="close-breaker" data-name="${esc(name)}">Close now</button>`;
}

async function backends() {
  const list = await api("GET", "/api/v1/backends");
  view.innerHTML = `<h2>Backends</h2><div class="scroll"><table id="backends-table"><tr><th>Name</th><th>Kind</th><th>Base URL</th>
    <th>Adapter / mapper</th><th>Bound records</th><th>Breaker</th><th>Health</th><th>Jobs</th></tr>${list.items.map((b) => `
    <tr data-name="${esc(b.name)}"><td>${esc(b.name)}</td><td>${esc(b.config.kind)} ${esc(b.config.version)}</td>
    <td>${esc(b.config.base_url)}</td>
    <td>${b.units.error ? `<span class="bad">${esc(b.units.error)}</span>` : `${esc(b.units.adapter)} / ${esc(b.units.mapper)}`}</td>
    <td>${Object.entries(b.bindings).map(([m, n]) => `${esc(m)}: ${n}`).join("<br>")}</td>
    <td class="breaker">${breaker(b.breaker, b.name)}</td>
    <td class="health">checking…</td>
    <td>${b.paused ? `<span class="bad">paused</span> <button class="resume" data-name="${esc(b.name)}">Resume</button>`
      : `<button class="pause" data-name="${esc(b.name)}">Pause</button>`}
    <a href="#/jobs?backend=${enc(b.name)}">jobs</a> · <a href="#/events?backend=${enc(b.name)}">dead events</a></td></tr>`).join("")}</table></div>`;
  // Closing a breaker by hand: its jobs run at once (it opens again if the
  // backend still fails).
  view.querySelectorAll("button.close-breaker").forEach((btn) => btn.onclick = () =>
    act(() => api("POST", `/api/v1/backends/${enc(btn.dataset.name)}/breaker/close`), "breaker closed"));
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
    <div class="scroll"><table id="connectors-table"><tr><th>Name</th><th>Version</th><th>Backend</th><th>Requests</th><th>Digest</th><th>Installed</th><th></th></tr>
    ${list.items.map((c) => `<tr><td>${esc(c.name)}</td><td>${esc(c.version)} ${c.active ? '<span class="good">active</span>' : ""}</td>
    <td>${esc(c.backend_kind)} ${esc(c.backend_versions)}</td><td class="requests">${requests(c)}</td><td><code>${esc(c.digest.slice(0, 19))}</code></td><td>${when(c.installed_at)}</td>
    <td>${action(c)}</td></tr>`).join("")}</table></div>`;
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
    const what = r.name || r.backend || (r.id ? "job " + r.id : "");
    say(`${what} ${r.version || ""} ${done}`.replace(/\s+/g, " ").trim());
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
      <label>Function <input id="job-filter-function" value="${esc(q.get("function") || "")}" size="14"></label>
      <button type="submit">Filter</button></form>
    <div class="bulk" id="bulk">Every job this filter matches:
      <select id="bulk-action"><option value="requeue">requeue</option><option value="cancel">cancel</option>
        <option value="done">mark done</option><option value="discard">discard (failed only)</option></select>
      <button id="bulk-count" type="button">Count</button> <span id="bulk-result"></span></div>
    ${scroll(`<table id="jobs-table"><tr><th>Id</th><th>Function</th><th>Description</th><th>State</th><th>Tries</th><th>Channel</th><th>Enqueued</th><th>Took</th><th>Error</th><th></th></tr>
    ${list.items.map((j) => `<tr data-id="${j.id}"><td><a href="#/jobs/${j.id}">${j.id}</a></td><td>${esc(j.function)}</td><td>${esc(j.description)}</td>
      <td class="state state-${j.state}">${j.state}</td><td>${j.tries}</td><td>${esc(j.channel)}</td><td>${when(j.created_at)}</td>
      <td>${duration(j.started_at, j.finished_at)}</td><td>${esc(j.error_message)}</td>
      <td>${actions(j)}</td></tr>`).join("")}</table>`)}
    ${list.next ? `<p><a href="#/jobs?${new URLSearchParams({ ...params, cursor: list.next })}">Older jobs →</a></p>` : ""}`;
  document.getElementById("job-filters").onsubmit = (e) => {
    e.preventDefault();
    const p = {};
    for (const k of ["state", "channel", "backend", "function"]) {
      const v = document.getElementById("job-filter-" + k).value.trim();
      if (v) p[k] = v;
    }
    location.hash = "#/jobs?" + new URLSearchParams(p);
  };
  // Bulk actions count first (a dry run), then act on what was counted.
  const filter = {};
  for (const k of ["state", "channel", "backend", "function"]) if (q.get(k)) filter[k] = q.get(k);
  document.getElementById("bulk-count").onclick = async () => {
    const action = document.getElementById("bulk-action").value;
    const out = document.getElementById("bulk-result");
    try {
      const r = await api("POST", "/api/v1/jobs/bulk", { action, filter, dry_run: true });
      out.innerHTML = `${r.matched} jobs match. <button id="bulk-confirm" class="primary" type="button">${esc(action)} them</button>`;
      document.getElementById("bulk-confirm").onclick = () =>
        act(async () => {
          const done = await api("POST", "/api/v1/jobs/bulk", { action, filter, dry_run: false });
          return { name: `${done.changed} jobs:` };
        }, `${action} done`);
    } catch (e) { out.textContent = ""; say(e.message, true); }
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
    <dl class="times" id="job-times"><dt>Enqueued</dt><dd>${when(j.created_at)}</dd>
      <dt>Due</dt><dd>${when(j.eta)}</dd>
      <dt>Started</dt><dd>${when(j.started_at) || '<span class="muted">not yet</span>'}${j.started_at ? ` (waited ${duration(j.created_at, j.started_at)})` : ""}</dd>
      <dt>Finished</dt><dd>${when(j.finished_at) || '<span class="muted">not yet</span>'}${j.finished_at && j.started_at ? ` (ran ${duration(j.started_at, j.finished_at)})` : ""}</dd></dl>
    ${j.error_message ? `<p class="bad">${esc(j.error_kind)}: ${esc(j.error_message)}</p>` : ""}
    ${j.result ? `<p>Result: ${esc(j.result)}</p>` : ""}
    <p id="job-actions">${actions(j)}</p>
    <h3>Dependencies</h3>
    <div class="graph" id="job-graph"><div class="col">${nodes("parent") || '<span class="muted">no parents</span>'}</div>→
      <div class="col"><span class="node self">#${j.id} ${esc(j.description || j.function)}</span></div>→
      <div class="col">${nodes("child") || '<span class="muted">no children</span>'}</div></div>
    <h3>Arguments</h3><pre>${esc(JSON.stringify(j.args, null, 2))}</pre>
    <h3>Log</h3><div class="scroll"><table id="job-log"><tr><th>Try</th><th>Level</th><th>Source</th><th>Message</th></tr>
      ${d.logs.map((l) => `<tr><td>${l.try_number}</td><td>${esc(l.level)}</td><td>${esc(l.source)}</td><td>${esc(l.message)}</td></tr>`).join("") || '<tr><td colspan="4" class="muted">the connector logged nothing</td></tr>'}</table></div>
    <h3>Outbound HTTP</h3><div class="scroll"><table id="job-audit"><tr><th>Try</th><th>Request</th><th>Status</th><th>Bytes in/out</th><th>ms</th></tr>
      ${d.audit.map((a) => `<tr><td>${a.try_number}</td><td>${esc(a.entry.method)} ${esc(a.entry.scheme)}://${esc(a.entry.host)}:${a.entry.port}${esc(a.entry.path)}</td>
        <td>${a.entry.denied ? `<span class="bad">denied: ${esc(a.entry.denied)}</span>` : esc(a.entry.status || a.entry.error)}</td>
        <td>${a.entry.response_bytes}/${a.entry.request_bytes}</td><td>${a.entry.duration_ms}</td></tr>`).join("") || '<tr><td colspan="5" class="muted">no outbound requests</td></tr>'}</table></div>`;
  wireActions();
  if (["pending", "enqueued", "started", "wait_dependencies"].includes(j.state)) {
    timers.push(setTimeout(() => route(), 1000));
  }
}

// --- Dead events: deliveries that failed for good; retry or discard -----
async function events(params) {
  const q = new URLSearchParams(params);
  const list = await api("GET", "/api/v1/events/dead?" + q.toString());
  const backend = q.get("backend") || "";
  view.innerHTML = `<h2>Dead events${backend ? " of " + esc(backend) : ""}</h2>
    <p class="muted">An event whose delivery to a backend's listener failed every try. Retry delivers it again (tries reset);
      discard gives up on it for good.</p>
    <div class="bulk">All of them: <button id="dead-count" type="button">Count</button> <span id="dead-result"></span></div>
    ${scroll(`<table id="dead-table"><tr><th>Job</th><th>Backend</th><th>Event</th><th>What</th><th>Record</th><th>Tries</th><th>Failed</th><th>Error</th><th></th></tr>
    ${list.items.map((d) => `<tr data-job="${d.job}"><td><a href="#/jobs/${d.job}">${d.job}</a></td><td>${esc(d.backend)}</td><td>${esc(d.event)}</td>
      <td>${esc(d.name)}:${esc(d.model)}</td><td>${d.local_id ? `<a href="#/records/${enc(d.model)}/${enc(d.local_id)}">${esc(d.local_id)}</a>` : ""}</td>
      <td>${esc(d.tries)}</td><td>${when(d.failed_at)}</td><td>${esc(d.error_message)}</td>
      <td><button class="dead-retry" data-job="${d.job}">Retry</button> <button class="dead-discard" data-job="${d.job}">Discard</button></td></tr>`).join("")
      || '<tr><td colspan="9" class="muted">no dead events</td></tr>'}</table>`)}
    ${list.next ? `<p><a href="#/events?${new URLSearchParams({ ...params, cursor: list.next })}">Older →</a></p>` : ""}`;
  const body = (extra) => Object.assign(backend ? { backend } : {}, extra);
  for (const [cls, verb, word] of [["dead-retry", "retry", "delivered again"], ["dead-discard", "discard", "discarded"]]) {
    view.querySelectorAll("button." + cls).forEach((b) => b.onclick = () =>
      act(() => api("POST", `/api/v1/events/dead/${verb}`, body({ jobs: [Number(b.dataset.job)] })).then(() => ({ name: "event of job " + b.dataset.job })), word));
  }
  document.getElementById("dead-count").onclick = async () => {
    const out = document.getElementById("dead-result");
    try {
      const r = await api("POST", "/api/v1/events/dead/retry", body({ dry_run: true }));
      out.innerHTML = `${r.matched} dead events. <button id="dead-retry-all" class="primary" type="button">Retry all</button>
        <button id="dead-discard-all" type="button">Discard all</button>`;
      document.getElementById("dead-retry-all").onclick = () =>
        act(() => api("POST", "/api/v1/events/dead/retry", body({})).then((d) => ({ name: `${d.changed} events` })), "delivered again");
      document.getElementById("dead-discard-all").onclick = () =>
        act(() => api("POST", "/api/v1/events/dead/discard", body({})).then((d) => ({ name: `${d.changed} events` })), "discarded");
    } catch (e) { say(e.message, true); }
  };
}

// --- Records and bindings -------------------------------------------------
async function records(params) {
  const model = params.model || "";
  let list = { items: [], next: null };
  if (model) list = await api("GET", `/api/v1/records/${enc(model)}?` + new URLSearchParams(params.cursor ? { cursor: params.cursor } : {}));
  view.innerHTML = `<h2>Records</h2>
    <form class="filters" id="records-form"><label>Model <input id="records-model" value="${esc(model)}" size="14" required></label>
      <button type="submit">Show</button> <a href="#/bindings">Bindings →</a></form>
    ${model ? scroll(`<table id="records-table"><tr><th>Id</th><th>Version</th><th>Updated</th><th>Data</th></tr>
      ${list.items.map((r) => `<tr data-id="${esc(r.id)}"><td><a href="#/records/${enc(model)}/${enc(r.id)}">${esc(r.id)}</a></td><td>${esc(r.version)}</td>
        <td>${when(r.updated_at)}</td><td><code>${esc(JSON.stringify(r.data).slice(0, 160))}</code></td></tr>`).join("")
        || '<tr><td colspan="4" class="muted">no records of this model</td></tr>'}</table>`) : '<p class="muted">Name a model (product, customer, …).</p>'}
    ${list.next ? `<p><a href="#/records?${new URLSearchParams({ model, cursor: list.next })}">More →</a></p>` : ""}`;
  document.getElementById("records-form").onsubmit = (e) => {
    e.preventDefault();
    location.hash = "#/records?" + new URLSearchParams({ model: document.getElementById("records-model").value.trim() });
  };
}

// One record with its story: its bindings in every backend, then its
// jobs, events and their outbound requests, newest first.
async function record(model, id) {
  const t = await api("GET", `/api/v1/records/${enc(model)}/${enc(id)}/timeline`);
  const r = t.record;
  view.innerHTML = `<h2>${esc(model)} ${esc(id)}</h2>
    ${r ? `<p>version ${esc(r.version)} · updated ${when(r.updated_at)}</p><pre id="record-data">${esc(JSON.stringify(r.data, null, 2))}</pre>`
      : '<p class="bad">deleted locally (its history follows)</p>'}
    <h3>Bindings</h3>${scroll(`<table id="record-bindings"><tr><th>Backend</th><th>External id</th><th>Last synced</th></tr>
      ${t.bindings.map((b) => `<tr><td>${esc(b.backend)}</td><td>${esc(b.external_id)}</td><td>${when(b.sync_date)}</td></tr>`).join("")
        || '<tr><td colspan="3" class="muted">not bound to any backend</td></tr>'}</table>`)}
    <h3>Timeline</h3>${scroll(`<table id="record-timeline"><tr><th>When</th><th>What</th><th>State</th><th>Detail</th></tr>
      ${t.timeline.map((e) => `<tr><td>${when(e.at)}</td><td>${e.job ? `<a href="#/jobs/${e.job}">${esc(e.what)}</a>` : esc(e.what)}</td>
        <td class="state-${esc(e.state)}">${esc(e.state)}</td><td>${esc(e.detail)}</td></tr>`).join("")
        || '<tr><td colspan="4" class="muted">nothing recorded</td></tr>'}</table>`)}`;
}

async function bindings(params) {
  const backend = params.backend || "", model = params.model || "";
  let list = { items: [], next: null };
  if (backend && model) {
    const q = { backend, model };
    if (params.cursor) q.cursor = params.cursor;
    list = await api("GET", "/api/v1/bindings?" + new URLSearchParams(q));
  }
  view.innerHTML = `<h2>Bindings</h2>
    <form class="filters" id="bindings-form"><label>Backend <input id="bindings-backend" value="${esc(backend)}" size="10" required></label>
      <label>Model <input id="bindings-model" value="${esc(model)}" size="12" required></label><button type="submit">Show</button></form>
    ${backend && model ? scroll(`<table id="bindings-table"><tr><th>External id</th><th>Local id</th><th>Last synced</th></tr>
      ${list.items.map((b) => `<tr><td>${esc(b.external_id)}</td><td><a href="#/records/${enc(model)}/${enc(b.local_id)}">${esc(b.local_id)}</a></td>
        <td>${when(b.sync_date)}</td></tr>`).join("") || '<tr><td colspan="3" class="muted">no bindings</td></tr>'}</table>`) : ""}
    ${list.next ? `<p><a href="#/bindings?${new URLSearchParams({ backend, model, cursor: list.next })}">More →</a></p>` : ""}`;
  document.getElementById("bindings-form").onsubmit = (e) => {
    e.preventDefault();
    location.hash = "#/bindings?" + new URLSearchParams({
      backend: document.getElementById("bindings-backend").value.trim(),
      model: document.getElementById("bindings-model").value.trim(),
    });
  };
}

async function route() {
  stopTimers();
  if (!token()) return showLogin();
  document.getElementById("sign-out").hidden = false;
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = Object.fromEntries(new URLSearchParams(query || ""));
  try {
    if (path === "/backends") await backends();
    else if (path === "/connectors") await connectors();
    else if (path === "/jobs") await jobs(params);
    else if (path.startsWith("/jobs/")) await job(path.slice(6));
    else if (path === "/events") await events(params);
    else if (path === "/nodes") await nodes();
    else if (path === "/records") await records(params);
    else if (path.startsWith("/records/")) {
      const [model, id] = path.slice(9).split("/").map(decodeURIComponent);
      await record(model, id);
    }
    else if (path === "/bindings") await bindings(params);
    else await overview();
  } catch (e) { say(e.message, true); }
}

window.addEventListener("hashchange", () => { say(""); route(); });
route();
