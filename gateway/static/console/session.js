// Signing in and out, and the live event stream that feeds every other part while signed in.

import { endCallAudio, startAudio } from "./audio.js";
import { currentCall, dropCall, onCallEntry, openCall, syncMe } from "./call.js";
import { api, busy, errorText, nameOf, onUnauthorized, session } from "./context.js";
import { EventStream } from "./events.js";
import { addActivity, refreshHistory, refreshHistorySoon } from "./history.js";
import { clearOffers, onOfferEntry, setOffers } from "./offers.js";
import { onPresence, refreshNotResponding, renderPresence } from "./presence.js";
import { renderTransferTargets } from "./transfer.js";
import { $, announce, setText, show } from "./ui.js";

let stream = null;

export function showSignIn(reason = "") {
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
    session.config = await api.config();
    startSession(session.config.agent);
  });
}

async function onSignOut() {
  if (currentCall() && !window.confirm("You are on a call. Signing out disconnects your audio and may end the call. Sign out anyway?")) return;
  try {
    if (session.agent?.status === "available") await api.setStatus("offline");
  } catch { /* signing out matters more */ }
  try {
    await api.logout();
  } catch { /* the session is being dropped either way */ }
  signedOut("You have signed out.", { leave: true });
}

function signedOut(reason, { leave = false } = {}) {
  if (!session.agent) return;
  stream?.stop();
  stream = null;
  endCallAudio({ local: !leave });
  session.agent = null;
  dropCall();
  clearOffers();
  showSignIn(reason);
}

export function startSession(agent) {
  session.agent = agent;
  setText("agent-name", agent.name);
  setText("signin-error", "");
  show("signin-view", false);
  show("console-view", true);
  show("session-tools", true);
  document.title = "Agent console";
  startAudio();
  renderPresence();
  stream = new EventStream("/api/events", {
    status: renderStreamStatus,
    ready: () => { syncMe(); refreshHistory(); },
    timeline: onTimeline,
    offers: setOffers,
    presence: (agents) => {
      session.agents = agents;
      onPresence();
      renderTransferTargets();
    },
    signedOut: (why) => signedOut(`You were signed out: ${why}.`),
    beforeReconnect: async () => {
      try {
        await api.me();
        return true;
      } catch (err) {
        return err.status !== 401; // 401 already sent the page back to sign-in
      }
    },
  });
  stream.start();
  $("main").focus();
  openLinkedTransfer();
}

/** /t/<id> (the link in B's SMS) lands here as ?transfer=<id>: open that transfer's call. */
async function openLinkedTransfer() {
  const params = new URLSearchParams(window.location.search);
  const id = params.get("transfer");
  if (!id) return;
  params.delete("transfer");
  window.history.replaceState(null, "", `${window.location.pathname}${params.size ? `?${params}` : ""}`);
  try {
    const { transfer } = await api.transfer(id);
    if (currentCall()?.id === transfer.call_id) return;
    const { call } = await api.call(transfer.call_id);
    if (!currentCall()) openCall(call.id, call.from, nameOf(transfer.source_agent_id));
  } catch (err) {
    announce(`That transfer cannot be shown: ${errorText(err)}`, true);
  }
}

function onTimeline(entry) {
  addActivity(entry);
  if (entry.kind === "agent_not_responding" && entry.agent_id === session.agent?.id) refreshNotResponding();
  onCallEntry(entry);
  onOfferEntry(entry);
  refreshHistorySoon();
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

export function bindSession() {
  $("signin-form").addEventListener("submit", onSignIn);
  $("sign-out").addEventListener("click", onSignOut);
  onUnauthorized(() => signedOut("Your session has ended. Please sign in again."));
}
