// The agent console: boots the page and wires its parts, one module per concern.
//
//   session.js   sign in/out, the live event stream that feeds the rest
//   offers.js    calls and transfers ringing for me: cards, ring, accept, decline
//   call.js      the call on screen, re-read from the server after every event about it
//   transfer.js  starting a transfer and following it, buttons from the server's allowed_actions
//   audio.js     which room this page's audio is in; microphone; reconnecting
//   presence.js  my status and the team
//   history.js   today's calls and the activity list
//   outcome.js   how the last call or offer ended
//   context.js   what they share: the REST client, the configuration, who I am

import { bindAudio } from "./audio.js";
import { bindCall, currentCall, tickCall } from "./call.js";
import { api, busy, errorText, me, session } from "./context.js";
import { bindHistory } from "./history.js";
import { bindOffers, createRinger, tickOffers } from "./offers.js";
import { bindOutcome } from "./outcome.js";
import { bindPresence } from "./presence.js";
import { bindSession, showSignIn, startSession } from "./session.js";
import { $, setText } from "./ui.js";

const ringer = createRinger(renderSound);

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

/** Who the test call rings: it may be another agent (routing picks the longest-idle one). */
function testCallText(reply) {
  const names = (reply.ringing || []).map((a) => (a.id === me() ? "you" : a.name));
  const from = reply.withheld ? "a withheld number" : reply.from;
  if (!names.length) return `Test call placed from ${from}; no agent is available, so the caller waits in the queue.`;
  return `Test call placed from ${from}; ringing ${names.join(" and ")}.`;
}

async function onSandboxCall(event) {
  await busy(event.currentTarget, async () => {
    try {
      const reply = await api.sandboxCall({ withheld: $("sandbox-withheld").checked });
      setText("sandbox-status", testCallText(reply));
    } catch (err) {
      setText("sandbox-status", `Could not place a test call: ${errorText(err)}`);
    }
  });
}

function bind() {
  bindSession();
  bindPresence();
  bindOffers();
  bindCall();
  bindAudio();
  bindHistory();
  bindOutcome();
  $("sound-toggle").addEventListener("click", () => ringer.toggle());
  $("sandbox-call")?.addEventListener("click", onSandboxCall);
  // Any click may unlock sound the agent asked for before a reload.
  document.addEventListener("pointerdown", () => ringer.unlock(), { once: true });
  window.addEventListener("beforeunload", (event) => {
    if (currentCall()) {
      event.preventDefault();
      event.returnValue = "";
    }
  });
  setInterval(() => { tickOffers(); tickCall(); }, 1000);
}

async function boot() {
  bind();
  renderSound(ringer.state);
  try {
    session.config = await api.config();
  } catch (err) {
    showSignIn(`The gateway cannot be reached: ${errorText(err)}. Reload to try again.`);
    return;
  }
  if (session.config.agent) startSession(session.config.agent);
  else showSignIn();
  document.body.dataset.ready = "true";
}

boot();
