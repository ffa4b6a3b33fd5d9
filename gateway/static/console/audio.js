// The call's audio: which room this page is connected to, reconnecting, the microphone.
// The call module says which room the agent's live leg is in; this one follows it.

import { api, errorText, session } from "./context.js";
import { createMedia } from "./media.js";
import { $, announce, rescueFocus, setText, show } from "./ui.js";

const audio = {
  media: null,
  room: null, // the room this page's audio is in (or joining)
  onCall: false, // rejoin after a drop only while there is a call
  rejoinAttempts: 0,
  micOn: true,
};

export function startAudio() {
  audio.media = createMedia(session.config.media, api, {
    onState: onMediaState,
    onLevel: renderLevel,
    onMicError: (message) => { setText("media-error", message); announce(message, true); },
  });
}

/** A call begins: fresh reconnect budget, no stale error. */
export function beginCallAudio() {
  audio.onCall = true;
  audio.rejoinAttempts = 0;
  setText("media-error", "");
}

/** The call is over for this agent: leave the room (``local``: only forget it here, as when signing out). */
export function endCallAudio({ local = false } = {}) {
  audio.onCall = false;
  audio.room = null;
  audio.media?.disconnect({ local }).catch(() => {});
  renderMediaState("idle");
}

export const audioRoom = () => audio.room;

export async function joinMedia(room, token = null, url = null) {
  audio.room = room;
  setText("media-error", "");
  hideRetry();
  renderMediaState("connecting");
  try {
    if (!token) {
      const reply = await api.joinRoom(room);
      token = reply.token;
      url = reply.url;
    }
    if (audio.room !== room) return; // superseded by a newer room
    await audio.media.connect(room, token, url || session.config.livekit_url);
    audio.media.setMicEnabled(audio.micOn);
  } catch (err) {
    if (audio.room !== room) return;
    onMediaState("failed", { message: `Audio failed: ${errorText(err)}.` });
  }
}

/** Audio follows the agent's live leg: the consult room during a warm transfer, etc. */
export async function followLeg(leg) {
  if (leg.room === audio.room) return;
  if (leg.state === "accepted") {
    await joinMedia(leg.room);
    return;
  }
  audio.room = leg.room;
  try {
    await audio.media.adopt(leg.room);
  } catch (err) {
    onMediaState("failed", { message: `Audio disconnected: ${err.message}. Press Reconnect audio.` });
  }
}

function onMediaState(mediaState, detail = {}) {
  renderMediaState(mediaState, detail);
  if (mediaState === "connected") {
    audio.rejoinAttempts = 0;
    hideRetry();
  } else if (mediaState === "disconnected" && audio.onCall) {
    // A network blip LiveKit could not resume: rejoin with a fresh token while the leg lives.
    const room = audio.room;
    audio.room = null;
    if (audio.rejoinAttempts < 4 && room) {
      const delay = 1000 * 2 ** audio.rejoinAttempts++;
      renderMediaState("reconnecting");
      setTimeout(() => { if (audio.onCall && !audio.room) joinMedia(room); }, delay);
    } else {
      onMediaState("failed", { message: "Audio lost and could not reconnect." });
    }
  } else if (mediaState === "failed") {
    const message = `${detail.message || "Audio failed."} The caller cannot hear you.`;
    setText("media-error", message);
    announce(message, true);
    show("media-retry", audio.onCall);
  } else if (mediaState === "audio-blocked") {
    setText("media-error", "The browser blocked call audio. Press Reconnect audio to hear the caller.");
    show("media-retry", true);
  }
}

/** Reconnect audio goes away once audio works: focus on it moves to the microphone button. */
function hideRetry() {
  rescueFocus("media-retry", "mic-toggle");
  show("media-retry", false);
}

function renderMediaState(mediaState) {
  const el = $("media-state");
  el.dataset.state = mediaState;
  const sandbox = session.config?.media === "sandbox";
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
  setText("mic-level-text", audio.micOn ? `${Math.round(level * 100)}%` : "Muted");
}

function onMicToggle() {
  audio.micOn = !audio.micOn;
  audio.media.setMicEnabled(audio.micOn);
  const button = $("mic-toggle");
  button.setAttribute("aria-pressed", String(audio.micOn));
  setText(button, audio.micOn ? "Microphone on" : "Microphone off (muted)");
  announce(audio.micOn ? "Microphone on." : "Microphone muted.");
}

/** Reconnect audio: unblock playback, or rejoin ``room`` (the live leg's) with a fresh token. */
export async function retryAudio(room) {
  if (audio.media.startAudio && audio.room && $("media-state").dataset.state === "audio-blocked") {
    await audio.media.startAudio();
    onMediaState("connected");
    setText("media-error", "");
    return;
  }
  room = room || audio.room;
  if (room) await joinMedia(room);
}

export function bindAudio() {
  $("mic-toggle").addEventListener("click", onMicToggle);
}
