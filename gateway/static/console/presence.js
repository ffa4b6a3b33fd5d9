// The agent's own status (available, busy, offline) and the team list.

import { api, busy, errorText, me, session } from "./context.js";
import { $, announce, h, hourMinute, rescueFocus, setText, show, statusLabel } from "./ui.js";

const presence = {
  pending: null, // the status the agent just chose, until the server answers
  onCall: false,
};

/** The team's presence changed (event stream): my own status may be in it. */
export function onPresence() {
  const mine = session.agents.find((a) => a.id === me());
  if (mine && session.agent) {
    session.agent = { ...session.agent, status: mine.status };
    // Set to Not responding by the gateway: the reason (which call, when) comes with my record.
    if (mine.not_responding && !session.agent.not_responding) refreshNotResponding();
    if (!mine.not_responding && session.agent.not_responding) session.agent = { ...session.agent, not_responding: null };
  }
  renderPresence();
  renderTeam();
}

/** The gateway set me offline after a missed offer: fetch why, then say it. */
export async function refreshNotResponding() {
  try {
    const reply = await api.me();
    if (!session.agent) return;
    const was = session.agent.not_responding;
    session.agent = { ...session.agent, ...reply.agent };
    renderPresence();
    if (reply.agent.not_responding && !was) announce($("not-responding-text").textContent, true);
  } catch { /* the next presence update tries again */ }
}

function notRespondingText(why) {
  const when = hourMinute(why.at);
  const caller = why.caller || "a caller";
  const at = when ? ` at ${when}` : "";
  const what = why.reason === "returned"
    ? `The caller ${caller} came back to you after a transfer${at}, but your console was not there; you were set to Not responding.`
    : `You ${why.reason === "declined" ? "declined a waiting call" : "missed a call"} from ${caller}${at} and were set to Not responding.`;
  return `${what} No calls are offered to you until you become available again.`;
}

function renderNotResponding() {
  const why = session.agent?.status === "offline" ? session.agent.not_responding : null;
  const section = $("not-responding");
  if (!why) rescueFocus(section, "offers-heading");
  setText("not-responding-text", why ? notRespondingText(why) : "");
  show(section, Boolean(why));
}

export function setOnCall(onCall) {
  presence.onCall = onCall;
  renderPresence();
}

export function renderPresence() {
  const status = session.agent?.status;
  // While the agent's own change is on its way, keep their choice rather than the old status.
  const shown = presence.pending || status;
  for (const button of presenceButtons()) button.setAttribute("aria-pressed", String(button.dataset.status === shown));
  const notResponding = status === "offline" && Boolean(session.agent?.not_responding);
  setText("presence-text", status
    ? `You are ${notResponding ? "not responding (offline)" : statusLabel(status).toLowerCase()}${status === "busy" && presence.onCall ? " (on a call)" : ""}.`
    : "—");
  $("presence-text").dataset.status = status || "";
  renderNotResponding();
}

const presenceButtons = () => document.querySelectorAll("#presence button[data-status]");

/** One explicit press, one change on the server (focus stays on the button pressed). */
async function onPresencePress(event) {
  const button = event.currentTarget;
  const wanted = button.dataset.status || "available";
  if (wanted === (presence.pending || session.agent?.status) && !session.agent?.not_responding) return;
  await busy(button, async () => {
    setText("presence-error", "");
    presence.pending = wanted;
    renderPresence();
    try {
      const reply = await api.setStatus(wanted);
      session.agent = { ...session.agent, status: reply.agent.status, not_responding: reply.agent.not_responding };
      announce(`Status set to ${statusLabel(reply.agent.status)}.`);
    } catch (err) {
      setText("presence-error", `Could not change your status: ${errorText(err)}`);
    } finally {
      presence.pending = null;
    }
    renderPresence();
  });
}

function renderTeam() {
  const others = session.agents.filter((a) => a.id !== me());
  $("team").replaceChildren(...(others.length ? others.map((a) => h("li", { class: `agent status-${a.status}` },
    h("span", { class: "dot", "aria-hidden": "true" }),
    h("span", { class: "agent-name" }, a.name),
    h("span", { class: "agent-status" }, ` — ${a.not_responding ? "Not responding" : statusLabel(a.status)}`),
    a.phone ? h("span", { class: "muted" }, " (phone)") : null,
  )) : [h("li", { class: "muted" }, "No other agents.")]));
}

export function bindPresence() {
  for (const button of presenceButtons()) button.addEventListener("click", onPresencePress);
  $("available-again").addEventListener("click", onPresencePress);
}
