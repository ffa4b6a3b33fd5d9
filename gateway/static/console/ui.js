// Small DOM and formatting helpers. No framework: elements are built with h() and text nodes,
// never innerHTML, so transcript text and names can never inject markup.

export const $ = (id) => document.getElementById(id);

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function setText(id, text) {
  const el = typeof id === "string" ? $(id) : id;
  if (el && el.textContent !== text) el.textContent = text;
}

export function show(id, visible) {
  const el = typeof id === "string" ? $(id) : id;
  if (el) el.hidden = !visible;
}

/**
 * Whether a control may be used now. Controls that stop being available are marked
 * aria-disabled rather than disabled: a disabled button that has focus drops it to <body>,
 * an aria-disabled one keeps it (and its handler ignores presses).
 */
export function setEnabled(id, enabled) {
  const el = typeof id === "string" ? $(id) : id;
  if (enabled) delete el.dataset.unavailable;
  else el.dataset.unavailable = "true";
  syncDisabled(el);
}

export function syncDisabled(el) {
  const off = el.dataset.unavailable === "true" || el.getAttribute("aria-busy") === "true";
  el.setAttribute("aria-disabled", String(off));
}

export const isEnabled = (el) => el.getAttribute("aria-disabled") !== "true" && !el.disabled;

/** Move focus to ``target`` if it is inside ``container`` (about to be hidden or removed). */
export function rescueFocus(container, target) {
  const el = typeof container === "string" ? $(container) : container;
  if (el && el.contains(document.activeElement)) focusOn(target);
}

/** Focus an element (id or node); headings and regions get tabindex=-1 for it. */
export function focusOn(target) {
  const el = typeof target === "string" ? $(target) : target;
  if (!el) return;
  if (!el.matches("a[href], button, input, select, textarea, [tabindex]")) el.setAttribute("tabindex", "-1");
  el.focus();
}

/** Screen-reader announcement; urgent ones interrupt (incoming calls, failures). */
export function announce(text, urgent = false) {
  const el = $(urgent ? "announce-urgent" : "announce-polite");
  el.textContent = "";
  // A new text node after clearing makes screen readers repeat identical messages too.
  setTimeout(() => { el.textContent = text; }, 30);
}

export const E164 = /^\+[1-9]\d{6,14}$/;

export function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const m = Math.floor(s / 60);
  const hours = Math.floor(m / 60);
  const mm = hours ? String(m % 60).padStart(2, "0") : String(m);
  return `${hours ? hours + ":" : ""}${mm}:${String(s % 60).padStart(2, "0")}`;
}

export function clock(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** "14:30" for the notices that say when something happened. */
export function hourMinute(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

const STATUS_LABELS = { available: "Available", busy: "Busy", offline: "Offline" };
export const statusLabel = (status) => STATUS_LABELS[status] || status;

const CALL_STATES = {
  bridging: "Connecting", connected: "Connected", on_hold: "Caller on hold",
  voicemail: "In voicemail", ended: "Ended", queued: "Waiting in line",
};
export const callStateLabel = (state) => CALL_STATES[state] || state;

/** Who is calling, from a call as GET /api/calls/<id> returns it: a web caller (with their verified
 * name), "Withheld number" (the carrier sent no number), or the number. */
export function callerOf(call) {
  if (call.channel === "web") return `web caller${call.facts?.context?.name ? ` ${call.facts.context.name}` : ""}`;
  return call.withheld ? "Withheld number" : call.from;
}

const TRANSFER_STATES = {
  initiated: "Starting", consulting: "Consulting", target_ringing: "Ringing",
  target_accepted: "Accepted", conferenced: "Caller connected to both", completed: "Completed",
  cancelled: "Cancelled", declined: "Declined", no_answer: "No answer",
  abandoned: "Caller hung up", failed: "Failed",
  team_busy: "No one free in the team", queued: "Caller kept in the team's queue",
};
export const transferStateLabel = (state) => TRANSFER_STATES[state] || state;

/** One human sentence per timeline entry (the activity list, steps and call histories). */
export function describeEvent(e, names = {}) {
  const d = e.detail || {};
  const who = (id) => (id ? names[id] || id : "the number");
  switch (e.kind) {
    case "call_received": return `Call received from ${d.caller || "a caller"}`;
    case "agent_ringing": return `Ringing ${who(e.agent_id)}${d.channels ? ` (${d.channels.join(" and ")})` : ""}`;
    case "target_ringing": return "Dialling the transfer number";
    case "leg_accepted": return `${who(e.agent_id)} accepted`;
    case "agent_joined": return `${who(e.agent_id)} joined the ${e.transfer_id ? "consult room" : "call"}`;
    case "caller_joined": return "Caller joined the room";
    case "caller_connected": return "Caller connected";
    case "caller_left_room": return "Caller left the room";
    case "web_caller_away": return `The web caller's page left the call; their place is kept for ${d.rejoin_s ?? "a few"} s`;
    case "web_caller_rejoined": return "The web caller is back in the call";
    case "web_caller_did_not_return": return "The web caller did not come back";
    case "caller_on_hold": return "Caller on hold";
    case "caller_bridging": return "Connecting the caller";
    case "caller_returning": return `Caller returning to ${d.to === "agent A" ? "the first agent" : "the queue"}${d.reason ? ` (${d.reason})` : ""}`;
    case "call_owner_changed": return `The call now belongs to ${e.agent_id ? who(e.agent_id) : d.target || "the number"}`;
    case "call_ended": return `Call ended${d.reason ? ` (${d.reason})` : ""}`;
    case "agent_ended_call": return `${who(e.agent_id)} ended the call`;
    case "agent_status": return `${who(e.agent_id)} set to ${statusLabel(d.status)}${d.by === "admin" ? " by an admin" : ""}${d.was === "not_responding" ? " (was Not responding)" : ""}`;
    case "agent_not_back": return `${who(e.agent_id)} did not come back for the caller`;
    case "caller_rerouted": return `Caller routed again${d.to === "queue" ? " (waiting in line, at the front)" : ""}`;
    case "agent_not_responding": return `${who(e.agent_id)} ${{ declined: "declined the call", returned: "was not there for the returned caller" }[d.reason] || "missed the call"} and was set to Not responding`;
    case "transfer_initiated": return `${who(e.agent_id)} started a ${d.mode || ""} transfer to ${names[d.target] || d.target || "someone"}`;
    case "consult_room_ready": return "Consult room ready";
    case "summary_ready": return `Summary ready${d.source ? ` (${d.source === "openai" ? "AI" : "local"})` : ""}`;
    case "sms_sent": return `Summary texted to ${d.to || "the target"}`;
    case "sms_failed": return `Summary text failed${d.error ? `: ${d.error}` : ""}`;
    case "note_added": return `${who(e.agent_id)} added a note`;
    case "transcript": return `Transcript: ${d.speaker || "someone"} spoke`;
    case "no_agent": return `No agent available${d.reason ? ` (${d.reason})` : ""}`;
    case "voicemail_left": return "Voicemail left";
    case "bridge_failed": return "Connecting the caller failed";
    case "bridge_lost": return "The caller's connection to the room was lost";
    case "livekit_unavailable": return "Media server unavailable";
    case "transfer_target_ringing": return "Transfer target ringing";
    case "transfer_team_busy": return "No one free in the target team; the transferring agent chooses";
    case "transfer_queued": return "Caller kept in the target team's queue";
    case "queued": return `Caller waiting in line${d.position ? ` (place ${d.position})` : ""}`;
    case "queue_offered": return `Offered to ${who(e.agent_id)} from the line`;
    case "callback_requested": return `Caller asked to be called back (place ${d.position ?? "kept"})`;
    case "caller_left_for_callback": return "Caller hung up to wait for the callback";
    case "callback_dialled": return `Calling ${d.number || "the caller"} back (try ${d.attempt})`;
    case "callback_unanswered": return `Callback not answered (try ${d.attempt})${d.retry_in_s ? `; trying again in ${d.retry_in_s} s` : ""}`;
    case "callback_answered": return "Caller answered the callback";
    case "callback_missed": return "Callback missed: not answered twice";
    case "menu_chosen": return `Caller chose ${d.team} (${d.by})`;
    case "transfer_target_accepted": return "Transfer accepted by the target";
    case "transfer_conferenced": return "Caller connected with both agents";
    case "transfer_consulting": return "Agents consulting; caller on hold";
    default:
      if (e.kind.startsWith("transfer_")) {
        const state = e.kind.slice("transfer_".length);
        return `Transfer ${transferStateLabel(state).toLowerCase()}${d.reason ? `: ${d.reason}` : ""}`;
      }
      if (e.kind.startsWith("leg_")) {
        return `${who(e.agent_id)}: ${e.kind.slice(4).replace("_", " ")}${d.reason ? ` (${d.reason})` : ""}`;
      }
      return e.kind.replaceAll("_", " ");
  }
}
