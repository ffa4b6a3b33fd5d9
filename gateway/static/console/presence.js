// The agent's own status (available, busy, offline) and the team list.

import { api, busy, errorText, me, session } from "./context.js";
import { $, announce, h, setText, statusLabel } from "./ui.js";

const presence = {
  pending: null, // the status the agent just chose, until the server answers
  onCall: false,
};

/** The team's presence changed (event stream): my own status may be in it. */
export function onPresence() {
  const mine = session.agents.find((a) => a.id === me());
  if (mine && session.agent) session.agent = { ...session.agent, status: mine.status };
  renderPresence();
  renderTeam();
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
  setText("presence-text", status
    ? `You are ${statusLabel(status).toLowerCase()}${status === "busy" && presence.onCall ? " (on a call)" : ""}.`
    : "—");
  $("presence-text").dataset.status = status || "";
}

const presenceButtons = () => document.querySelectorAll("#presence button[data-status]");

/** One explicit press, one change on the server (focus stays on the button pressed). */
async function onPresencePress(event) {
  const button = event.currentTarget;
  const wanted = button.dataset.status;
  if (wanted === (presence.pending || session.agent?.status)) return;
  await busy(button, async () => {
    setText("presence-error", "");
    presence.pending = wanted;
    renderPresence();
    try {
      const reply = await api.setStatus(wanted);
      session.agent = { ...session.agent, status: reply.agent.status };
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
    h("span", { class: "agent-status" }, ` — ${statusLabel(a.status)}`),
    a.phone ? h("span", { class: "muted" }, " (phone)") : null,
  )) : [h("li", { class: "muted" }, "No other agents.")]));
}

export function bindPresence() {
  for (const button of presenceButtons()) button.addEventListener("click", onPresencePress);
}
