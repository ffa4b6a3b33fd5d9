// The supervisor's board: the live picture and the day's figures from /api/supervisor/events
// (server-sent events; a "board" event whenever something changes), charts drawn by uPlot, and
// listen-in (a hidden, subscribe-only LiveKit participant in the call's room).

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

const $ = (id) => document.getElementById(id);
const OUTCOMES = ["completed", "declined", "no_answer", "cancelled", "abandoned", "failed", "in_progress"];

let snapshot = null;
let receivedAt = 0;
let config = { media: "livekit" };
let listening = null; // { callId, leave: async () => void }
const charts = {};

function announce(text) {
  const region = $("announce-polite");
  region.textContent = "";
  setTimeout(() => { region.textContent = text; }, 50);
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

function percent(share) {
  return share === null || share === undefined ? "–" : `${Math.round(share * 100)}%`;
}

function cell(row, text, className) {
  const td = document.createElement(row.children.length === 0 ? "th" : "td");
  if (row.children.length === 0) td.scope = "row";
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function fill(tbody, rows, build) {
  tbody.replaceChildren(...rows.map((item) => { const tr = document.createElement("tr"); build(tr, item); return tr; }));
}

function elapsed() {
  return (Date.now() - receivedAt) / 1000;
}

// ------------------------------------------------------------------ rendering
function renderTeams(teams) {
  fill($("teams-body"), teams, (tr, t) => {
    cell(tr, t.name);
    const waiting = cell(tr, String(t.waiting), "num");
    const longest = cell(tr, t.waiting ? duration(t.longest_wait_s + elapsed()) : "–", "num");
    longest.dataset.since = t.waiting ? String(t.longest_wait_s) : "";
    cell(tr, String(t.callbacks_pending), "num");
    cell(tr, String(t.agents.available), "num");
    cell(tr, String(t.agents.on_call), "num");
    cell(tr, String(t.agents.not_responding), "num");
    cell(tr, String(t.agents.offline), "num");
    if (t.waiting && !t.agents.available) {
      tr.className = "alert";
      waiting.classList.add("alert-cell");
    }
  });
}

function figuresRow(tr, [label, f]) {
  cell(tr, label);
  cell(tr, String(f.offered), "num");
  cell(tr, String(f.answered), "num");
  cell(tr, String(f.abandoned), "num");
  cell(tr, percent(f.service_level), "num");
  cell(tr, duration(f.average_wait_s), "num");
  cell(tr, duration(f.average_handle_s), "num");
}

function renderFigures(figures) {
  const o = figures.overall;
  $("today-since").textContent = `(since midnight, ${figures.timezone})`;
  $("tile-offered").textContent = o.offered;
  $("tile-answered").textContent = o.answered;
  $("tile-abandoned").textContent = o.abandoned;
  $("tile-voicemail").textContent = o.voicemail;
  $("tile-sl-label").textContent = `Service level (answered within ${figures.service_level_threshold_s} s)`;
  $("tile-service-level").textContent = percent(o.service_level);
  $("tile-wait").textContent = duration(o.average_wait_s);
  $("tile-handle").textContent = duration(o.average_handle_s);
  $("tile-transfer-connect").textContent = duration(o.transfers.median_initiate_to_connected_s);
  const rows = Object.entries(figures.teams).map(([team, f]) => [`Team ${team}`, f]);
  const channels = Object.entries(figures.channels);
  if (channels.length > 1 || (channels.length === 1 && channels[0][0] !== "phone")) {
    rows.push(...channels.map(([channel, f]) => [`Channel ${channel}`, f]));
  }
  fill($("figures-body"), rows, figuresRow);
  fill($("outcomes-body"), [o.transfers.by_outcome], (tr, counts) => {
    for (const outcome of OUTCOMES) {
      const td = document.createElement("td");
      td.textContent = String(counts[outcome] ?? 0);
      tr.appendChild(td);
    }
  });
  renderCharts(figures);
}

const STATE_CLASS = (state) => `state state-${state.replace(/\s+/g, "-")}`;

function renderCalls(calls) {
  $("calls-count").textContent = calls.length;
  $("calls-empty").hidden = calls.length > 0;
  $("calls-table").hidden = calls.length === 0;
  fill($("calls-body"), calls, (tr, c) => {
    tr.dataset.callId = c.id;
    tr.dataset.state = c.state;
    cell(tr, c.caller || "unknown");
    cell(tr, c.team);
    cell(tr, c.channel);
    cell(tr, c.agent || "–");
    cell(tr, c.state, STATE_CLASS(c.state));
    const clock = cell(tr, duration(c.in_state_s + elapsed()), "num clock");
    clock.dataset.base = String(c.in_state_s);
    const actions = document.createElement("td");
    if (c.state === "talking") {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "small secondary listen";
      const isMine = listening && listening.callId === c.id;
      button.textContent = isMine ? "Listening" : "Listen";
      button.disabled = Boolean(listening);
      button.setAttribute("aria-label", `Listen to the call from ${c.caller || "unknown"} with ${c.agent || "no agent"}`);
      button.addEventListener("click", () => listen(c));
      actions.appendChild(button);
    }
    tr.appendChild(actions);
  });
}

function renderTransfers(transfers) {
  $("transfers-count").textContent = transfers.length;
  $("transfers-empty").hidden = transfers.length > 0;
  $("transfers-table").hidden = transfers.length === 0;
  fill($("transfers-body"), transfers, (tr, t) => {
    tr.dataset.transferId = t.id;
    cell(tr, t.from_agent);
    cell(tr, t.to || "–");
    cell(tr, t.mode);
    cell(tr, t.state.replace(/_/g, " "));
    const clock = cell(tr, duration(t.elapsed_s + elapsed()), "num clock");
    clock.dataset.base = String(t.elapsed_s);
  });
}

function render(data) {
  const previous = snapshot;
  snapshot = data;
  receivedAt = Date.now();
  renderTeams(data.live.teams);
  renderFigures(data.figures);
  renderCalls(data.live.calls);
  renderTransfers(data.live.transfers);
  if (previous) {
    const waitingBefore = previous.live.teams.reduce((n, t) => n + t.waiting, 0);
    const waitingNow = data.live.teams.reduce((n, t) => n + t.waiting, 0);
    if (waitingNow !== waitingBefore) announce(`${waitingNow} caller${waitingNow === 1 ? "" : "s"} waiting`);
  }
}

function tick() {
  if (!snapshot) return;
  for (const el of document.querySelectorAll("td.clock")) el.textContent = duration(Number(el.dataset.base) + elapsed());
}

// ------------------------------------------------------------------ charts
function colour(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

function chartWidth(el) {
  return Math.max(260, Math.floor(el.getBoundingClientRect().width || 320));
}

function axes() {
  const ink = colour("--muted");
  const grid = { stroke: colour("--line"), width: 1 };
  return [
    { stroke: ink, grid, ticks: grid },
    { stroke: ink, grid, ticks: grid, incrs: [1, 2, 5, 10, 20, 50, 100], size: 40 },
  ];
}

function drawChart(key, el, data, series, xRange) {
  const options = {
    width: chartWidth(el),
    height: 180,
    scales: { x: xRange ? { time: true, range: xRange } : { time: true }, y: { range: (u, min, max) => [0, Math.max(2, max)] } },
    axes: axes(),
    series: [{}, ...series],
    legend: { show: true, live: false },
    cursor: { drag: { x: false, y: false } },
  };
  if (charts[key]) charts[key].destroy();
  charts[key] = new uPlot(options, data, el);
}

function renderCharts(figures) {
  const slots = figures.intervals.slice(-16); // the last four hours of quarter-hours
  const xs = slots.map((s) => Date.parse(s.start) / 1000 + 450); // the middle of each quarter-hour
  // Side by side in each quarter-hour: answered to the left of its start, abandoned to the right.
  const bars = (align) => uPlot.paths.bars({ size: [0.4, 30], align });
  drawChart("intervals", $("chart-intervals"), [xs, slots.map((s) => s.answered), slots.map((s) => s.abandoned)], [
    { label: "Answered", stroke: colour("--ok"), fill: colour("--ok"), paths: bars(-1), points: { show: false } },
    { label: "Abandoned", stroke: colour("--danger"), fill: colour("--danger"), paths: bars(1), points: { show: false } },
  ], () => [xs[0] - 450, xs[xs.length - 1] + 450]);
  const answered = slots.reduce((n, s) => n + s.answered, 0);
  const abandoned = slots.reduce((n, s) => n + s.abandoned, 0);
  $("chart-intervals-summary").textContent =
    `Last ${slots.length} quarter-hours: ${answered} answered, ${abandoned} abandoned.`;
  const points = figures.waiting;
  drawChart("waiting", $("chart-waiting"), [points.map((p) => Date.parse(p.at) / 1000), points.map((p) => p.waiting)], [
    { label: "Waiting", stroke: colour("--accent"), width: 2, points: { show: false } },
  ]);
  const most = Math.max(0, ...points.map((p) => p.waiting));
  const now = points.length ? points[points.length - 1].waiting : 0;
  $("chart-waiting-summary").textContent = `Now ${now} waiting; at most ${most} in the last hour.`;
}

// ------------------------------------------------------------------ listen-in
async function post(path, body = {}) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-Requested-With": "console", "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
  return data;
}

function showListen(text) {
  $("listen-status").hidden = !text;
  $("listen-status").textContent = text || "";
  $("listen-stop").hidden = !listening;
}

// The sandbox's LiveKit double has no WebRTC: joining is handing it the token (through the
// console's same-origin proxy), which it validates as LiveKit does.
async function joinSandbox(grant) {
  await post("/console/sandbox/rtc/join", { token: grant.token });
  return async () => { await post("/console/sandbox/rtc/leave", { room: grant.room, identity: grant.identity }); };
}

async function joinLiveKit(grant) {
  const { Room, RoomEvent, Track } = await import("livekit-client");
  const room = new Room();
  const audio = [];
  room.on(RoomEvent.TrackSubscribed, (track) => {
    if (track.kind === Track.Kind.Audio) {
      const el = track.attach();
      audio.push(el);
      document.body.appendChild(el);
    }
  });
  await room.connect(grant.url, grant.token, { autoSubscribe: true });
  return async () => {
    await room.disconnect();
    for (const el of audio) el.remove();
  };
}

async function listen(call) {
  if (listening) return;
  showListen(`Connecting to the call from ${call.caller}…`);
  try {
    const grant = await post(`/api/supervisor/calls/${encodeURIComponent(call.id)}/listen`);
    const leave = config.media === "sandbox" ? await joinSandbox(grant) : await joinLiveKit(grant);
    listening = { callId: call.id, leave };
    showListen(`Listening to the call from ${call.caller} with ${call.agent || "no agent"}. Neither hears you.`);
    announce("Listening");
  } catch (err) {
    listening = null;
    showListen(`Could not listen: ${err.message}`);
  }
  if (snapshot) renderCalls(snapshot.live.calls);
}

async function stopListening() {
  if (!listening) return;
  const { leave } = listening;
  listening = null;
  try { await leave(); } catch { /* the room may have closed with the call */ }
  showListen("Stopped listening.");
  if (snapshot) renderCalls(snapshot.live.calls);
}

// ------------------------------------------------------------------ stream
function setStream(state, text) {
  $("stream-status").dataset.state = state;
  $("stream-status-text").textContent = text;
}

function connect() {
  const source = new EventSource("/api/supervisor/events");
  source.addEventListener("board", (event) => {
    setStream("live", "Live updates: on");
    render(JSON.parse(event.data));
    if (listening && !snapshot.live.calls.some((c) => c.id === listening.callId)) {
      stopListening().then(() => showListen("The call you were listening to has ended."));
    }
  });
  source.addEventListener("signed_out", (event) => {
    source.close();
    setStream("reconnecting", "Live updates: stopped");
    showListen(`The board stopped: ${JSON.parse(event.data).reason}. Reload after signing in again.`);
    stopListening();
  });
  source.addEventListener("error", () => setStream("reconnecting", "Live updates: reconnecting…"));
}

async function start() {
  try {
    const response = await fetch("/console/config", { credentials: "same-origin" });
    if (response.ok) config = await response.json();
  } catch { /* the defaults do */ }
  $("listen-stop").addEventListener("click", stopListening);
  setInterval(tick, 1000);
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => snapshot && renderCharts(snapshot.figures), 200);
  });
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => snapshot && renderCharts(snapshot.figures));
  connect();
}

start();
