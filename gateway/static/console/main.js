// The agent console: wiring between the REST API, the live event stream, media and the page.
//
// The page follows the server rather than guessing: every event about the current call
// re-reads the call, its transfers, its timeline and the agent's own legs (syncCall), and
// the buttons, the transfer progress and even which room the audio is in are derived from
// that. So a page that missed events (stream dropped, laptop asleep) is right again after
// one sync, and the event stream only has to say "something happened".

import { Api, ApiError } from "./api.js";
import { EventStream } from "./events.js";
import { createMedia } from "./media.js";
import { Ringer } from "./ringer.js";
import {
  $, E164, TRANSFER_ACTIVE, announce, callStateLabel, clock, describeEvent, duration, h, setText, show,
  statusLabel, transferStateLabel,
} from "./ui.js";

const state = {
  config: null,
  agent: null,
  agents: [],
  offers: [],
  offerPreviews: new Map(), // transfer id -> { transcript, summary }
  call: null, // { id, caller, data, transfers, timeline, legs, mediaRoom }
  media: null,
  mediaRoom: null,
  stream: null,
  syncing: null,
  syncAgain: false,
  rejoinAttempts: 0,
  micOn: true,
  pendingStatus: null,
  knownOffers: new Set(),
  handledOffers: new Set(), // leg ids this page accepted or declined
  announcedTransferEnds: new Set(),
};

const api = new Api({ onUnauthorized: () => signedOut("Your session has ended. Please sign in again.") });
const ringer = new Ringer(renderSound);

// ------------------------------------------------------------------ helpers
const me = () => state.agent?.id;
const nameOf = (id) => state.agents.find((a) => a.id === id)?.name || id;
const names = () => Object.fromEntries(state.agents.map((a) => [a.id, a.name]));

function errorText(err) {
  return err instanceof ApiError ? err.message : String(err?.message || err);
}

/** Disable a button while its action runs, so a double click sends one request. */
async function busy(button, action) {
  if (button.getAttribute("aria-busy") === "true") return;
  button.setAttribute("aria-busy", "true");
  const wasDisabled = button.disabled;
  button.disabled = true;
  try {
    return await action();
  } finally {
    button.removeAttribute("aria-busy");
    button.disabled = wasDisabled;
  }
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// ------------------------------------------------------------- sign in/out
function showSignIn(reason = "") {
  show("console-view", false);
  show("session-tools", false);
  show("signin-view", true);
  setText("signin-reason", reason);
  show("signin-reason", Boolean(reason));
  document.title = "Sign in — Agent console";
  $("credential").focus();
}

async function onSignIn(event) {
  event.preventDefault();
  const input = $("credential");
  const credential = input.value.trim();
  setText("signin-error", "");
  input.removeAttribute("aria-invalid");
  if (!credential) {
    setText("signin-error", "Enter your agent credential.");
    input.setAttribute("aria-invalid", "true");
    input.focus();
    return;
  }
  await busy($("signin-button"), async () => {
    try {
      await api.login(credential);
    } catch (err) {
      const message = err.status === 401
        ? "Sign-in failed: that credential was not recognised. Check it, or ask an admin for a new one."
        : `Sign-in failed: ${errorText(err)}`;
      setText("signin-error", message);
      input.setAttribute("aria-invalid", "true");
      input.select();
      return;
    }
    input.value = "";
    state.config = await api.config();
    startSession(state.config.agent);
  });
}

async function onSignOut() {
  if (state.call && !window.confirm("You are on a call. Signing out disconnects your audio and may end the call. Sign out anyway?")) return;
  try {
    if (state.agent?.status === "available") await api.setStatus("offline");
  } catch { /* signing out matters more */ }
  try {
    await api.logout();
  } catch { /* the session is being dropped either way */ }
  signedOut("You have signed out.", { leave: true });
}

function signedOut(reason, { leave = false } = {}) {
  if (!state.agent) return;
  state.stream?.stop();
  state.stream = null;
  ringer.stop();
  state.media?.disconnect({ local: !leave }).catch(() => {});
  state.agent = null;
  state.call = null;
  state.mediaRoom = null;
  state.offers = [];
  state.knownOffers.clear();
  state.handledOffers.clear();
  $("offer-list").replaceChildren();
  show("call-panel", false);
  showSignIn(reason);
}

function startSession(agent) {
  state.agent = agent;
  setText("agent-name", agent.name);
  setText("signin-error", "");
  show("signin-view", false);
  show("console-view", true);
  show("session-tools", true);
  document.title = "Agent console";
  state.media = createMedia(state.config.media, api, {
    onState: onMediaState,
    onLevel: renderLevel,
    onMicError: (message) => { setText("media-error", message); announce(message, true); },
  });
  renderPresence();
  state.stream = new EventStream("/api/events", {
    status: renderStreamStatus,
    ready: () => { syncMe(); refreshHistory(); },
    timeline: onTimeline,
    offers: (offers) => { state.offers = offers; renderOffers(); },
    presence: (agents) => { state.agents = agents; onPresence(); },
    signedOut: (reason) => signedOut(`You were signed out: ${reason}.`),
    beforeReconnect: async () => {
      try {
        await api.me();
        return true;
      } catch (err) {
        return err.status !== 401; // 401 already sent the page back to sign-in
      }
    },
  });
  state.stream.start();
  $("main").focus();
}

function renderStreamStatus(status) {
  const el = $("stream-status");
  el.dataset.state = status;
  setText("stream-status-text", {
    live: "Live updates: on",
    reconnecting: "Live updates: reconnecting…",
    stopped: "Live updates: off",
  }[status] || status);
}

function renderSound(soundState) {
  const button = $("sound-toggle");
  button.setAttribute("aria-pressed", String(soundState === "on"));
  button.dataset.state = soundState;
  setText(button, {
    on: "Sound on",
    off: "Enable sound",
    blocked: "Sound blocked — click to enable",
  }[soundState]);
}

// ---------------------------------------------------------------- presence
function onPresence() {
  const mine = state.agents.find((a) => a.id === me());
  if (mine && state.agent) state.agent = { ...state.agent, status: mine.status };
  renderPresence();
  renderTeam();
  renderTransferTargets();
}

function renderPresence() {
  const status = state.agent?.status;
  // While the agent's own change is on its way, keep their choice rather than the old status.
  const shown = state.pendingStatus || status;
  for (const radio of document.querySelectorAll("input[name=presence]")) radio.checked = radio.value === shown;
  const onCall = Boolean(state.call);
  setText("presence-text", status
    ? `You are ${statusLabel(status).toLowerCase()}${status === "busy" && onCall ? " (on a call)" : ""}.`
    : "—");
  $("presence-text").dataset.status = status || "";
}

async function onPresenceChange(event) {
  const wanted = event.target.value;
  setText("presence-error", "");
  state.pendingStatus = wanted;
  try {
    const reply = await api.setStatus(wanted);
    state.agent = { ...state.agent, status: reply.agent.status };
    announce(`Status set to ${statusLabel(reply.agent.status)}.`);
  } catch (err) {
    setText("presence-error", `Could not change your status: ${errorText(err)}`);
  } finally {
    state.pendingStatus = null;
  }
  renderPresence();
}

function renderTeam() {
  const others = state.agents.filter((a) => a.id !== me());
  $("team").replaceChildren(...(others.length ? others.map((a) => h("li", { class: `agent status-${a.status}` },
    h("span", { class: "dot", "aria-hidden": "true" }),
    h("span", { class: "agent-name" }, a.name),
    h("span", { class: "agent-status" }, ` — ${statusLabel(a.status)}`),
    a.phone ? h("span", { class: "muted" }, " (phone)") : null,
  )) : [h("li", { class: "muted" }, "No other agents.")]));
}

function renderTransferTargets() {
  const select = $("transfer-agent");
  const previous = select.value;
  const others = state.agents.filter((a) => a.id !== me());
  const options = others.map((a) => h("option", {
    value: a.id, disabled: a.status !== "available",
  }, `${a.name} — ${statusLabel(a.status)}`));
  if (!others.some((a) => a.status === "available")) {
    options.unshift(h("option", { value: "", disabled: true }, "No agent is available"));
  }
  select.replaceChildren(...options);
  const keep = others.find((a) => a.id === previous && a.status === "available");
  const first = others.find((a) => a.status === "available");
  select.value = keep ? keep.id : first ? first.id : "";
}

// ------------------------------------------------------------------ offers
function renderOffers() {
  const list = $("offer-list");
  const byLeg = new Map([...list.children].map((li) => [li.dataset.leg, li]));
  const now = Date.now();
  for (const offer of state.offers) {
    let li = byLeg.get(offer.leg_id);
    offer.startedAt = now - offer.waiting_s * 1000;
    if (!li) {
      li = buildOffer(offer);
      list.append(li);
      if (!state.knownOffers.has(offer.leg_id)) {
        state.knownOffers.add(offer.leg_id);
        announce(offer.kind === "transfer"
          ? `Incoming transfer from ${offer.from_agent}, caller ${offer.caller}.`
          : `Incoming call from ${offer.caller}.`, true);
        if (offer.kind === "transfer") loadPreview(offer);
      }
    }
    li.dataset.startedAt = String(offer.startedAt);
    if (offer.kind === "transfer") renderPreview(li, offer);
    byLeg.delete(offer.leg_id);
  }
  for (const li of byLeg.values()) {
    li.remove();
    if (!state.handledOffers.has(li.dataset.leg)) offerWithdrawn(li);
  }
  const any = state.offers.length > 0;
  show("offers-empty", !any);
  $("offers").classList.toggle("ringing", any);
  if (any) ringer.start(); else ringer.stop();
  tick();
}

/** An offer ended without this page answering it: missed, taken elsewhere, or withdrawn. */
function offerWithdrawn(li) {
  const heading = li.querySelector("h3").textContent;
  const text = li.classList.contains("offer-transfer")
    ? `${heading}: no longer offered to you (withdrawn, or it rang out).`
    : `${heading}: no longer ringing for you (answered elsewhere, or it rang out and went to the next agent).`;
  setText("outcome-text", text);
  show("outcome", true);
  announce(text, true);
}

function buildOffer(offer) {
  const isTransfer = offer.kind === "transfer";
  const headingId = `offer-${offer.leg_id}-h`;
  const accept = h("button", { type: "button", class: "accept", "aria-describedby": headingId }, "Accept");
  const decline = h("button", { type: "button", class: "decline secondary", "aria-describedby": headingId }, "Decline");
  const error = h("p", { class: "error", role: "alert" });
  accept.addEventListener("click", () => busy(accept, () => acceptOffer(offer, error)));
  decline.addEventListener("click", () => busy(decline, () => declineOffer(offer, error)));
  return h("li", { class: `offer offer-${offer.kind}`, dataset: { leg: offer.leg_id, call: offer.call_id } },
    h("h3", { id: headingId }, isTransfer
      ? `Transfer from ${offer.from_agent} — caller ${offer.caller}`
      : `Incoming call from ${offer.caller}`),
    h("p", { class: "wait" }, "Waiting ", h("span", { class: "wait-time" }, "0:00")),
    isTransfer ? h("div", { class: "preview" },
      h("h4", {}, "Summary"), h("div", { class: "preview-summary" }, "Preparing the summary…"),
      h("details", { class: "preview-transcript" }, h("summary", {}, "Transcript so far"), h("ol", { class: "transcript" })),
    ) : null,
    h("div", { class: "controls" }, accept, decline),
    error,
  );
}

async function loadPreview(offer) {
  const id = offer.transfer.id;
  const preview = state.offerPreviews.get(id) || {};
  try {
    const [transcript, transfer] = await Promise.all([api.transcript(offer.call_id), api.transfer(id)]);
    preview.transcript = transcript;
    preview.summary = transfer.transfer.summary;
  } catch (err) {
    preview.error = errorText(err);
  }
  state.offerPreviews.set(id, preview);
  const li = $("offer-list").querySelector(`[data-leg="${CSS.escape(offer.leg_id)}"]`);
  if (li) renderPreview(li, offer);
}

function renderPreview(li, offer) {
  const preview = state.offerPreviews.get(offer.transfer.id) || {};
  const summary = offer.transfer.summary || preview.summary;
  li.querySelector(".preview-summary").replaceChildren(summary ? summaryBlock(summary) : "Preparing the summary…");
  if (preview.transcript) {
    li.querySelector(".preview-transcript ol").replaceChildren(...transcriptItems(preview.transcript));
  }
}

async function acceptOffer(offer, errorEl) {
  errorEl.textContent = "";
  state.handledOffers.add(offer.leg_id);
  await ringer.unlock();
  let reply;
  try {
    reply = offer.kind === "transfer"
      ? await api.transferAction(offer.transfer.id, "accept")
      : await api.accept(offer.call_id);
  } catch (err) {
    state.handledOffers.delete(offer.leg_id);
    errorEl.textContent = err.status === 409
      ? "Too late: this call is no longer ringing for you."
      : `Could not accept: ${errorText(err)}`;
    return;
  }
  ringer.stop();
  openCall(reply.call_id, offer.caller, offer.kind === "transfer" ? offer.from_agent : null);
  state.offers = state.offers.filter((o) => o.leg_id !== offer.leg_id);
  renderOffers();
  $("call-heading").focus();
  await joinMedia(reply.room, reply.token, reply.url);
  scheduleSync();
}

async function declineOffer(offer, errorEl) {
  errorEl.textContent = "";
  state.handledOffers.add(offer.leg_id);
  try {
    if (offer.kind === "transfer") await api.transferAction(offer.transfer.id, "decline");
    else await api.decline(offer.call_id);
    announce(offer.kind === "transfer" ? "Transfer declined." : "Call declined.");
  } catch (err) {
    state.handledOffers.delete(offer.leg_id);
    errorEl.textContent = err.status === 409
      ? "This call is no longer ringing for you."
      : `Could not decline: ${errorText(err)}`;
    return;
  }
  state.offers = state.offers.filter((o) => o.leg_id !== offer.leg_id);
  renderOffers();
  $("main").focus();
}

// -------------------------------------------------------------------- call
function openCall(callId, caller, fromAgent = null) {
  state.call = { id: callId, caller, fromAgent, data: null, transfers: [], timeline: [], legs: [] };
  state.rejoinAttempts = 0;
  show("outcome", false);
  setText("call-caller", caller || "caller");
  setText("media-error", "");
  setText("transfer-error", "");
  $("transcript").replaceChildren();
  show("transcript-empty", true);
  show("call-panel", true);
  renderCall();
  loadTranscript();
}

async function syncMe() {
  let reply;
  try {
    reply = await api.me();
  } catch {
    return;
  }
  state.agent = { ...state.agent, ...reply.agent };
  renderPresence();
  if (!state.call && reply.legs.length) {
    const leg = reply.legs.find((l) => l.state === "joined") || reply.legs[0];
    const detail = await api.call(leg.call_id).catch(() => null);
    if (!detail || state.call) return;
    openCall(leg.call_id, detail.call.from);
    announce(`Back on your call with ${detail.call.from}.`);
  }
  scheduleSync();
}

/** Re-read the current call; coalesces bursts of events into one request set at a time. */
function scheduleSync() {
  if (!state.call) return;
  if (state.syncing) {
    state.syncAgain = true;
    return;
  }
  state.syncing = syncCall()
    .catch((err) => console.warn("sync failed", err))
    .finally(() => {
      state.syncing = null;
      if (state.syncAgain) {
        state.syncAgain = false;
        scheduleSync();
      }
    });
}

async function syncCall() {
  const call = state.call;
  const [detail, timeline, mine] = await Promise.all([api.call(call.id), api.timeline(call.id), api.me()]);
  if (state.call !== call) return;
  call.data = detail.call;
  call.transfers = detail.transfers;
  call.timeline = timeline.timeline;
  call.legs = mine.legs.filter((l) => l.call_id === call.id);
  call.caller = detail.call.from;
  state.agent = { ...state.agent, ...mine.agent };
  renderPresence();

  const leg = call.legs.find((l) => l.state === "joined") || call.legs[0];
  if (!leg) {
    finishCall(outcomeText(call));
    return;
  }
  // Audio follows the agent's live leg: the consult room during a warm transfer, etc.
  if (leg.room !== state.mediaRoom) {
    if (leg.state === "accepted") {
      await joinMedia(leg.room);
    } else {
      state.mediaRoom = leg.room;
      try {
        await state.media.adopt(leg.room);
      } catch (err) {
        onMediaState("failed", { message: `Audio disconnected: ${err.message}. Press Reconnect audio.` });
      }
    }
  }
  renderCall();
  announceTransferEnd(call);
}

function latestTransfer(call) {
  const mine = call.transfers.filter((t) => t.source_agent_id === me() || t.target_agent_id === me());
  return mine[mine.length - 1] || null;
}

function targetName(t) {
  return t.target_agent_id ? nameOf(t.target_agent_id) : t.target_number || "the number";
}

function outcomeText(call) {
  const caller = call.caller || "the caller";
  const t = latestTransfer(call);
  if (call.data?.state === "ended") {
    const reason = call.data.end_reason ? ` (${call.data.end_reason})` : "";
    if (t && t.source_agent_id === me() && t.state === "completed") {
      return `Transfer complete: ${caller} went to ${targetName(t)}; the call has since ended${reason}.`;
    }
    return `The call with ${caller} has ended${reason}.`;
  }
  if (t && t.target_agent_id === me() && !TRANSFER_ACTIVE.includes(t.state) && t.state !== "completed") {
    return `The transfer from ${nameOf(t.source_agent_id)} ended (${transferStateLabel(t.state).toLowerCase()}`
      + `${t.end_reason ? `: ${t.end_reason}` : ""}); the caller stays with them.`;
  }
  if (t && t.source_agent_id === me()) {
    if (t.state === "completed" || t.state === "conferenced") {
      return `Transfer complete: ${caller} is now with ${targetName(t)}.`;
    }
    if (t.mode === "cold" && TRANSFER_ACTIVE.includes(t.state)) {
      return `Cold transfer of ${caller} to ${targetName(t)} under way; you are free for the next call.`;
    }
  }
  return `You have left the call with ${caller}.`;
}

function finishCall(text) {
  const hadFocus = $("call-panel").contains(document.activeElement);
  state.call = null;
  state.mediaRoom = null;
  state.media.disconnect().catch(() => {});
  show("call-panel", false);
  setText("outcome-text", text);
  show("outcome", true);
  announce(text, true);
  renderMediaState("idle");
  renderPresence();
  refreshHistory();
  if (hadFocus) $("outcome-dismiss").focus();
}

function renderCall() {
  const call = state.call;
  if (!call) return;
  const data = call.data;
  setText("call-caller", call.caller || "caller");
  setText("call-state", data ? callStateLabel(data.state) : "Connecting");
  const isOwner = data && data.agent_id === me() && data.state !== "ended";
  $("hangup").disabled = !isOwner;
  $("hangup").title = isOwner ? "" : "Only the agent who owns the call can end it";

  const t = latestTransfer(call);
  const active = t && TRANSFER_ACTIVE.includes(t.state);
  const canTransfer = isOwner && data.state === "connected" && !active;
  show("transfer-form", isOwner && !active);
  $("transfer-start").disabled = !canTransfer;
  renderTransfer(call, t);
  tick();
}

function renderTransfer(call, t) {
  show("transfer-progress", Boolean(t));
  if (!t) return;
  const source = t.source_agent_id === me();
  setText("transfer-progress-heading", source
    ? `Transfer to ${targetName(t)} (${t.mode})`
    : `Transfer from ${nameOf(t.source_agent_id)} (${t.mode})`);
  setText("transfer-state", transferStateLabel(t.state));
  $("transfer-state").dataset.state = t.state;
  const steps = call.timeline.filter((e) => e.transfer_id === t.id);
  const list = $("transfer-steps");
  if (list.childElementCount !== steps.length || list.dataset.transfer !== t.id) {
    list.dataset.transfer = t.id;
    list.replaceChildren(...steps.map((e) => h("li", {},
      h("time", { datetime: e.at }, clock(e.at)), " ", describeEvent(e, names()))));
  }
  $("transfer-summary").replaceChildren(
    h("h4", {}, "Summary"),
    t.summary ? summaryBlock(t.summary) : h("p", { class: "muted" }, "Preparing the summary…"),
  );

  const targetJoined = call.timeline.some((e) => e.kind === "agent_joined" && e.transfer_id === t.id
    && e.agent_id !== t.source_agent_id);
  const connect = $("transfer-connect");
  const cancel = $("transfer-cancel");
  const leave = $("transfer-leave");
  show(connect, source);
  show(cancel, source);
  show(leave, source);
  connect.disabled = !(source && t.state === "target_accepted" && targetJoined);
  cancel.disabled = !(source && ["initiated", "consulting", "target_ringing", "target_accepted"].includes(t.state));
  leave.disabled = !(source && t.state === "conferenced");
  connect.dataset.transfer = cancel.dataset.transfer = leave.dataset.transfer = t.id;

  const who = targetName(t);
  let hint = "";
  if (source) {
    hint = {
      initiated: `Reaching ${who}… The caller is on hold.`,
      consulting: `Reaching ${who}… The caller is on hold.`,
      target_ringing: `Ringing ${who}… The caller is on hold. You can cancel.`,
      target_accepted: targetJoined
        ? `You and ${who} are talking privately; the caller is on hold. Connect the caller when ready.`
        : `${who} accepted and is joining…`,
      conferenced: `The caller, ${who} and you are together. Introduce the caller, then press Leave.`,
      completed: `Done: the caller is with ${who}.`,
      declined: `${who} declined. The caller is back with you.`,
      no_answer: `${who} did not answer. The caller is back with you.`,
      cancelled: "Transfer cancelled. The caller is back with you.",
      failed: `Transfer failed${t.end_reason ? `: ${t.end_reason}` : ""}. The caller is back with you.`,
      abandoned: "The caller hung up during the transfer.",
    }[t.state] || "";
    const returning = call.timeline.filter((e) => e.kind === "caller_returning" && e.transfer_id === t.id).pop();
    if (returning && returning.detail?.to !== "agent A") {
      hint = `${transferStateLabel(t.state)}: the caller went back to the queue.`;
    }
  } else {
    hint = {
      target_ringing: "Accept to talk to the transferring agent first.",
      target_accepted: `${nameOf(t.source_agent_id)} will connect the caller when ready.`,
      conferenced: `The caller is with you and ${nameOf(t.source_agent_id)}, who will leave after the introduction.`,
      completed: "The call is yours now.",
    }[t.state] || transferStateLabel(t.state);
  }
  setText("transfer-hint", hint);
}

function announceTransferEnd(call) {
  const t = latestTransfer(call);
  if (!t || TRANSFER_ACTIVE.includes(t.state) || state.announcedTransferEnds.has(t.id)) return;
  state.announcedTransferEnds.add(t.id);
  announce(`Transfer ${transferStateLabel(t.state).toLowerCase()}. ${$("transfer-hint").textContent}`,
    t.state !== "completed");
}

function summaryBlock(summary) {
  const list = (items) => (items && items.length
    ? h("ul", {}, items.map((item) => h("li", {}, item)))
    : h("span", { class: "muted" }, "—"));
  return h("dl", { class: "summary-fields" },
    h("dt", {}, "Reason"), h("dd", {}, summary.reason || "—"),
    h("dt", {}, "Key facts"), h("dd", {}, list(summary.key_facts)),
    h("dt", {}, "Tried"), h("dd", {}, list(summary.tried)),
    h("dt", {}, "Mood"), h("dd", {}, summary.mood || "—"),
    h("dt", {}, "Next step"), h("dd", {}, summary.next_step || "—"),
  );
}

function transcriptItems({ transcript, notes }) {
  const items = [
    ...transcript.map((line) => ({ at: line.at, who: line.speaker, text: line.text, kind: "line" })),
    ...notes.map((note) => ({ at: note.at, who: `Note (${nameOf(note.agent_id)})`, text: note.text, kind: "note" })),
  ].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  return items.map((item) => h("li", { class: `transcript-${item.kind}` },
    h("time", { datetime: item.at }, clock(item.at)), " ",
    h("strong", {}, `${item.who}:`), " ", item.text));
}

async function loadTranscript() {
  const call = state.call;
  if (!call) return;
  try {
    const reply = await api.transcript(call.id);
    if (state.call !== call) return;
    const items = transcriptItems(reply);
    $("transcript").replaceChildren(...items);
    show("transcript-empty", items.length === 0);
  } catch (err) {
    console.warn("transcript", err);
  }
}

// ------------------------------------------------------------------ media
async function joinMedia(room, token = null, url = null) {
  state.mediaRoom = room;
  setText("media-error", "");
  show("media-retry", false);
  renderMediaState("connecting");
  try {
    if (!token) {
      const reply = await api.joinRoom(room);
      token = reply.token;
      url = reply.url;
    }
    if (state.mediaRoom !== room) return; // superseded by a newer room
    await state.media.connect(room, token, url || state.config.livekit_url);
    state.media.setMicEnabled(state.micOn);
  } catch (err) {
    if (state.mediaRoom !== room) return;
    onMediaState("failed", { message: `Audio failed: ${errorText(err)}.` });
  }
}

function onMediaState(mediaState, detail = {}) {
  renderMediaState(mediaState, detail);
  if (mediaState === "connected") {
    state.rejoinAttempts = 0;
    show("media-retry", false);
  } else if (mediaState === "disconnected" && state.call) {
    // A network blip LiveKit could not resume: rejoin with a fresh token while the leg lives.
    const room = state.mediaRoom;
    state.mediaRoom = null;
    if (state.rejoinAttempts < 4 && room) {
      const delay = 1000 * 2 ** state.rejoinAttempts++;
      renderMediaState("reconnecting");
      setTimeout(() => { if (state.call && !state.mediaRoom) joinMedia(room); }, delay);
    } else {
      onMediaState("failed", { message: "Audio lost and could not reconnect." });
    }
  } else if (mediaState === "failed") {
    const message = `${detail.message || "Audio failed."} The caller cannot hear you.`;
    setText("media-error", message);
    announce(message, true);
    show("media-retry", Boolean(state.call));
  } else if (mediaState === "audio-blocked") {
    setText("media-error", "The browser blocked call audio. Press Reconnect audio to hear the caller.");
    show("media-retry", true);
  }
}

function renderMediaState(mediaState, detail = {}) {
  const el = $("media-state");
  el.dataset.state = mediaState;
  const sandbox = state.config?.media === "sandbox";
  setText(el, {
    idle: "Not connected",
    connecting: "Connecting…",
    connected: sandbox ? "Connected (sandbox: simulated audio)" : "Connected",
    reconnecting: "Reconnecting…",
    disconnected: "Disconnected",
    failed: "Failed",
    "audio-blocked": "Connected, audio blocked",
  }[mediaState] || mediaState);
}

function renderLevel(level) {
  const meter = $("mic-level");
  if (level === null) {
    meter.value = 0;
    setText("mic-level-text", "No microphone");
    return;
  }
  meter.value = level;
  setText(meter, `${Math.round(level * 100)}%`);
  setText("mic-level-text", state.micOn ? `${Math.round(level * 100)}%` : "Muted");
}

function onMicToggle() {
  state.micOn = !state.micOn;
  state.media.setMicEnabled(state.micOn);
  const button = $("mic-toggle");
  button.setAttribute("aria-pressed", String(state.micOn));
  setText(button, state.micOn ? "Microphone on" : "Microphone off (muted)");
  announce(state.micOn ? "Microphone on." : "Microphone muted.");
}

async function onMediaRetry() {
  if (!state.call) return;
  if (state.media.startAudio && state.mediaRoom && $("media-state").dataset.state === "audio-blocked") {
    await state.media.startAudio();
    onMediaState("connected");
    setText("media-error", "");
    return;
  }
  const leg = state.call.legs.find((l) => l.state === "joined") || state.call.legs[0];
  const room = leg?.room || state.mediaRoom;
  if (room) await joinMedia(room);
}

// --------------------------------------------------------------- actions
async function onHangup() {
  const call = state.call;
  if (!call) return;
  await busy($("hangup"), async () => {
    try {
      await api.hangup(call.id);
      announce("Ending the call…");
    } catch (err) {
      setText("media-error", `Could not hang up: ${errorText(err)}`);
    }
  });
}

function onTargetKindChange() {
  const kind = document.querySelector("input[name=target-kind]:checked").value;
  show("target-agent-field", kind === "agent");
  show("target-number-field", kind === "number");
}

async function onTransferSubmit(event) {
  event.preventDefault();
  const call = state.call;
  if (!call) return;
  const errorEl = $("transfer-error");
  const number = $("transfer-number");
  errorEl.textContent = "";
  number.removeAttribute("aria-invalid");
  const kind = document.querySelector("input[name=target-kind]:checked").value;
  const mode = document.querySelector("input[name=mode]:checked").value;
  const notes = $("transfer-notes").value.trim();
  const body = { call_id: call.id, mode, notes: notes || undefined };
  if (kind === "agent") {
    const agentId = $("transfer-agent").value;
    if (!agentId) {
      errorEl.textContent = "Choose an available agent.";
      $("transfer-agent").focus();
      return;
    }
    body.target_agent_id = agentId;
  } else {
    const value = number.value.replace(/[\s().-]/g, "");
    if (!E164.test(value)) {
      errorEl.textContent = "Enter the number in international format, for example +15551234567.";
      number.setAttribute("aria-invalid", "true");
      number.focus();
      return;
    }
    body.target_number = value;
  }
  await busy($("transfer-start"), async () => {
    try {
      await api.initiateTransfer(body);
      $("transfer-notes").value = "";
      announce(`${mode === "warm" ? "Warm" : "Cold"} transfer started.`);
    } catch (err) {
      errorEl.textContent = `Transfer not started: ${errorText(err)}`;
      return;
    }
    scheduleSync();
    $("transfer-progress-heading").setAttribute("tabindex", "-1");
    $("transfer-progress-heading").focus();
  });
}

async function onTransferAction(event) {
  const button = event.currentTarget;
  const action = { "transfer-connect": "complete", "transfer-cancel": "cancel", "transfer-leave": "leave" }[button.id];
  await busy(button, async () => {
    try {
      await api.transferAction(button.dataset.transfer, action);
      announce({ complete: "Connecting the caller…", cancel: "Cancelling the transfer…", leave: "Leaving the call…" }[action]);
    } catch (err) {
      setText("transfer-hint", `Could not ${action === "complete" ? "connect" : action}: ${errorText(err)}`);
    }
  });
  scheduleSync();
}

async function onNoteSubmit(event) {
  event.preventDefault();
  const call = state.call;
  const text = $("note-text").value.trim();
  setText("note-error", "");
  if (!call) return;
  if (!text) {
    setText("note-error", "Write a note first.");
    $("note-text").focus();
    return;
  }
  await busy($("note-add"), async () => {
    try {
      await api.addNote(call.id, text);
      $("note-text").value = "";
      announce("Note added.");
      loadTranscript();
    } catch (err) {
      setText("note-error", `Note not saved: ${errorText(err)}`);
    }
  });
}

async function onSandboxCall(event) {
  await busy(event.currentTarget, async () => {
    try {
      const reply = await api.sandboxCall();
      setText("sandbox-status", `Test call placed from ${reply.from}.`);
    } catch (err) {
      setText("sandbox-status", `Could not place a test call: ${errorText(err)}`);
    }
  });
}

// ---------------------------------------------------------------- events
function onTimeline(entry) {
  addActivity(entry);
  const call = state.call;
  if (call && entry.call_id === call.id) {
    scheduleSync();
    if (entry.kind === "transcript" || entry.kind === "note_added") loadTranscript();
  } else if (!call && entry.agent_id === me() && ["leg_accepted", "agent_joined"].includes(entry.kind)) {
    syncMe(); // accepted on the phone or in another tab
  }
  if (entry.kind === "summary_ready" || entry.kind === "transcript" || entry.kind === "note_added") {
    for (const offer of state.offers) {
      if (offer.kind === "transfer" && offer.call_id === entry.call_id) loadPreview(offer);
    }
  }
  refreshHistoryDebounced(); // calls' states in today's list (one request per burst of events)
}

function addActivity(entry) {
  const list = $("activity");
  list.prepend(h("li", { dataset: { id: entry.id, kind: entry.kind } },
    h("time", { datetime: entry.at }, clock(entry.at)), " ", describeEvent(entry, names())));
  while (list.childElementCount > 50) list.lastElementChild.remove();
}

// --------------------------------------------------------------- history
async function refreshHistory() {
  if (!state.agent) return;
  let calls;
  try {
    calls = (await api.calls()).calls;
  } catch {
    return;
  }
  const list = $("history");
  const existing = new Map([...list.children].map((li) => [li.dataset.call, li]));
  const items = calls.map((c) => {
    let li = existing.get(c.id);
    if (!li) {
      const details = h("details", {}, h("summary", {}), h("ol", { class: "timeline" }, h("li", { class: "muted" }, "Loading…")));
      details.addEventListener("toggle", () => { if (details.open) loadHistoryTimeline(c.id, details); });
      li = h("li", { dataset: { call: c.id } }, details);
    }
    const details = li.querySelector("details");
    details.querySelector("summary").textContent =
      `${clock(c.created_at)} — ${c.from} — ${callStateLabel(c.state)}${c.end_reason ? ` (${c.end_reason})` : ""}`;
    if (details.open) loadHistoryTimeline(c.id, details);
    return li;
  });
  list.replaceChildren(...items);
  show("history-empty", items.length === 0);
}
const refreshHistoryDebounced = debounce(refreshHistory, 750);

async function loadHistoryTimeline(callId, details) {
  try {
    const { timeline } = await api.timeline(callId);
    details.querySelector("ol").replaceChildren(...timeline.map((e) => h("li", { dataset: { kind: e.kind } },
      h("time", { datetime: e.at }, clock(e.at)), " ", describeEvent(e, names()))));
  } catch (err) {
    details.querySelector("ol").replaceChildren(h("li", { class: "error" }, `Could not load: ${errorText(err)}`));
  }
}

// ------------------------------------------------------------------ clock
function tick() {
  const now = Date.now();
  for (const li of $("offer-list").children) {
    const started = Number(li.dataset.startedAt);
    const el = li.querySelector(".wait-time");
    if (el && started) setText(el, duration((now - started) / 1000));
  }
  const connected = state.call?.data?.connected_at;
  setText("call-duration", connected ? duration((now - Date.parse(connected)) / 1000) : "0:00");
}

// ------------------------------------------------------------------- boot
function bind() {
  $("signin-form").addEventListener("submit", onSignIn);
  $("sign-out").addEventListener("click", onSignOut);
  $("sound-toggle").addEventListener("click", () => ringer.toggle());
  for (const radio of document.querySelectorAll("input[name=presence]")) radio.addEventListener("change", onPresenceChange);
  for (const radio of document.querySelectorAll("input[name=target-kind]")) radio.addEventListener("change", onTargetKindChange);
  $("transfer-form").addEventListener("submit", onTransferSubmit);
  for (const id of ["transfer-connect", "transfer-cancel", "transfer-leave"]) $(id).addEventListener("click", onTransferAction);
  $("note-form").addEventListener("submit", onNoteSubmit);
  $("hangup").addEventListener("click", onHangup);
  $("mic-toggle").addEventListener("click", onMicToggle);
  $("media-retry").addEventListener("click", onMediaRetry);
  $("history-refresh").addEventListener("click", refreshHistory);
  $("outcome-dismiss").addEventListener("click", () => { show("outcome", false); $("main").focus(); });
  $("sandbox-call")?.addEventListener("click", onSandboxCall);
  // Any click may unlock sound the agent asked for before a reload.
  document.addEventListener("pointerdown", () => ringer.unlock(), { once: true });
  window.addEventListener("beforeunload", (event) => {
    if (state.call) {
      event.preventDefault();
      event.returnValue = "";
    }
  });
  setInterval(tick, 1000);
}

async function boot() {
  bind();
  renderSound(ringer.state);
  try {
    state.config = await api.config();
  } catch (err) {
    showSignIn(`The gateway cannot be reached: ${errorText(err)}. Reload to try again.`);
    return;
  }
  if (state.config.agent) startSession(state.config.agent);
  else showSignIn();
  document.body.dataset.ready = "true";
}

boot();
