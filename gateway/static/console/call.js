// The call on screen. The page follows the server rather than guessing: every event about
// the call re-reads the call, its transfers, its timeline and the agent's own legs (sync),
// and the buttons, the transfer progress and even which room the audio is in are derived
// from that. So a page that missed events (stream dropped, laptop asleep) is right again
// after one sync, and the event stream only has to say "something happened".

import { audioRoom, beginCallAudio, endCallAudio, followLeg, retryAudio } from "./audio.js";
import { transcriptItems } from "./content.js";
import { api, busy, errorText, me, session } from "./context.js";
import { refreshHistory } from "./history.js";
import { hideOutcome, showOutcome } from "./outcome.js";
import { setOnCall } from "./presence.js";
import { announceTransfer, bindTransfer, outcomeText, renderTransferPart, transferSettled } from "./transfer.js";
import { $, announce, callerOf, callStateLabel, duration, focusOn, rescueFocus, setEnabled, setText, show } from "./ui.js";

const current = {
  call: null, // { id, caller, fromAgent, data, transfers, timeline, legs }
  syncing: null, // the sync in flight
  syncAgain: false, // events arrived during it: sync once more after
  settling: null, // the call this agent's part ended in before the call itself ended
};

export const currentCall = () => current.call;

export function openCall(callId, caller, fromAgent = null) {
  current.settling = null;
  current.call = { id: callId, caller, fromAgent, data: null, transfers: [], timeline: [], legs: [] };
  beginCallAudio();
  hideOutcome();
  setText("call-caller", caller || "caller");
  setText("transfer-error", "");
  $("transcript").replaceChildren();
  show("transcript-empty", true);
  show("call-panel", true);
  setOnCall(true);
  renderCall();
  loadTranscript();
}

/** Forget the call without a word (signing out). */
export function dropCall() {
  current.call = null;
  show("call-panel", false);
  setOnCall(false);
}

/** After (re)connecting: my status, and the call I am on if this page does not show it yet. */
export async function syncMe() {
  let reply;
  try {
    reply = await api.me();
  } catch {
    return;
  }
  session.agent = { ...session.agent, ...reply.agent };
  setOnCall(Boolean(current.call));
  if (!current.call && reply.legs.length) {
    const leg = reply.legs.find((l) => l.state === "joined") || reply.legs[0];
    const detail = await api.call(leg.call_id).catch(() => null);
    if (!detail || current.call) return;
    openCall(leg.call_id, callerOf(detail.call));
    announce(`Back on your call with ${callerOf(detail.call)}.`);
  }
  scheduleSync();
}

/** Re-read the current call; coalesces bursts of events into one request set at a time. */
export function scheduleSync() {
  if (!current.call) return;
  if (current.syncing) {
    current.syncAgain = true;
    return;
  }
  current.syncing = syncCall()
    .catch((err) => console.warn("sync failed", err))
    .finally(() => {
      current.syncing = null;
      if (current.syncAgain) {
        current.syncAgain = false;
        scheduleSync();
      }
    });
}

async function syncCall() {
  const call = current.call;
  const [detail, timeline, mine] = await Promise.all([api.call(call.id), api.timeline(call.id), api.me()]);
  if (current.call !== call) return;
  call.data = detail.call;
  call.transfers = detail.transfers;
  call.timeline = timeline.timeline;
  call.legs = mine.legs.filter((l) => l.call_id === call.id);
  call.caller = callerOf(detail.call);
  session.agent = { ...session.agent, ...mine.agent };
  setOnCall(true);

  const leg = call.legs.find((l) => l.state === "joined") || call.legs[0];
  if (!leg) {
    finishCall(outcomeText(call));
    // My leg can end a moment before the call does (the caller hangs up: the room closes
    // first). Keep the call in view so the outcome card can say how it really ended.
    if (call.data?.state !== "ended") current.settling = call;
    return;
  }
  await followLeg(leg);
  renderCall();
  announceTransfer(call);
}

/** A transfer as an action just returned it: show it now rather than after the next sync. */
function applyTransfer(transfer) {
  const call = current.call;
  if (!call || !transfer || transfer.call_id !== call.id) return;
  const i = call.transfers.findIndex((t) => t.id === transfer.id);
  if (i >= 0) call.transfers[i] = transfer;
  else call.transfers.push(transfer);
  renderCall();
}

function finishCall(text) {
  const hadFocus = $("call-panel").contains(document.activeElement);
  transferSettled(current.call); // the outcome says how it ended: no second announcement
  current.call = null;
  endCallAudio();
  show("call-panel", false);
  setOnCall(false);
  showOutcome(text, { focus: hadFocus });
  refreshHistory();
}

function renderCall() {
  const call = current.call;
  if (!call) return;
  const data = call.data;
  setText("call-caller", call.caller || "caller");
  setText("call-state", data ? callbackStatus(call) || callStateLabel(data.state) : "Connecting");
  const isOwner = Boolean(data && data.agent_id === me() && data.state !== "ended");
  // While a transfer is under way (the three-way introduction included) the way out is the
  // transfer's own Leave or Cancel: Hang up would end the call for the caller and the other agent.
  const inTransfer = call.transfers.some((t) => t.active);
  setEnabled("hangup", isOwner && !inTransfer);
  $("hangup").title = !isOwner
    ? "Only the agent who owns the call can end it"
    : inTransfer ? "A transfer is under way: use its Leave or Cancel" : "";
  renderTransferPart(call, isOwner);
  tickCall();
}

/** What the agent who accepted a callback is told while they wait in the room for the caller: the
 * dial, and an unanswered dial's retry (a miss ends the call: the outcome card says it). */
export function callbackNews(entry) {
  const d = entry.detail || {};
  const number = d.number || "the caller";
  if (entry.kind === "callback_dialled") return `Calling ${number} back${d.attempt > 1 ? " (second try)" : ""}…`;
  if (entry.kind === "callback_unanswered") return `Calling ${number} back — no answer, trying again in ${d.retry_in_s} s`;
  return null;
}

/** The callback's latest step while the caller is still to be reached (the call is queued). */
function callbackStatus(call) {
  if (call.data?.state !== "queued") return null;
  const last = call.timeline.filter((e) => callbackNews(e)).pop();
  return last ? callbackNews(last) : null;
}

/** When this agent joined the call: its first agent_joined entry (B joins a transfer long after
 * the call connected; "Talking for" counts this agent's own time), else the call's connection. */
function joinedAt(call) {
  const mine = call.timeline.find((e) => e.kind === "agent_joined" && e.agent_id === me());
  return mine?.at || call.data?.connected_at || null;
}

export function tickCall() {
  const since = current.call ? joinedAt(current.call) : null;
  setText("call-duration", since ? duration((Date.now() - Date.parse(since)) / 1000) : "0:00");
}

export async function loadTranscript() {
  const call = current.call;
  if (!call) return;
  try {
    const reply = await api.transcript(call.id);
    if (current.call !== call) return;
    showTranscript(transcriptItems(reply));
  } catch (err) {
    console.warn("transcript", err);
  }
}

/**
 * The transcript is a live log: lines already shown stay, new ones are appended, so a screen
 * reader announces only the new lines (rebuilt only if a line arrived out of order).
 */
function showTranscript(items) {
  const list = $("transcript");
  const shown = [...list.children].map((li) => li.dataset.key);
  const keys = items.map((li) => li.dataset.key);
  const isPrefix = shown.every((key, i) => keys[i] === key);
  if (isPrefix) list.append(...items.slice(shown.length));
  else list.replaceChildren(...items);
  show("transcript-empty", items.length === 0);
}

/** A timeline entry arrived: re-read the call if it is this one. */
export function onCallEntry(entry) {
  const call = current.call;
  const settling = current.settling;
  if (settling && entry.call_id === settling.id && entry.kind === "call_ended") {
    current.settling = null;
    settleOutcome(settling);
  }
  if (call && entry.call_id === call.id) {
    // A callback's dial rang out while this agent waits for the caller: said once (the stream
    // delivers each entry once); the call panel keeps showing it until the next try. The caller
    // picking up is said too: waiting in silence, the agent would otherwise learn it from the audio.
    if (entry.kind === "callback_unanswered" && entry.agent_id === me()) announce(callbackNews(entry));
    if (entry.kind === "callback_answered") announce("The caller answered the callback — connecting you.");
    scheduleSync();
    if (entry.kind === "transcript" || entry.kind === "note_added") loadTranscript();
  } else if (!call && entry.agent_id === me() && ["leg_accepted", "agent_joined"].includes(entry.kind)) {
    syncMe(); // accepted on the phone or in another tab
  }
}

/** The call this agent had left has now ended: the outcome card says so, if it still shows that call. */
async function settleOutcome(call) {
  const detail = await api.call(call.id).catch(() => null);
  if (!detail || current.call || $("outcome").hidden) return;
  call.data = detail.call;
  call.transfers = detail.transfers;
  setText("outcome-text", outcomeText(call));
}

async function onHangup() {
  const call = current.call;
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

async function onNoteSubmit(event) {
  event.preventDefault();
  const call = current.call;
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
      $("note-text").focus(); // ready for the next note
    } catch (err) {
      setText("note-error", `Note not saved: ${errorText(err)}`);
    }
  });
}

function onMediaRetry() {
  const call = current.call;
  if (!call) return;
  const leg = call.legs.find((l) => l.state === "joined") || call.legs[0];
  return retryAudio(leg?.room || audioRoom());
}

export function bindCall() {
  $("note-form").addEventListener("submit", onNoteSubmit);
  $("hangup").addEventListener("click", onHangup);
  $("media-retry").addEventListener("click", onMediaRetry);
  bindTransfer({ currentCall, sync: scheduleSync, apply: applyTransfer });
}
