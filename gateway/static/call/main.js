// The caller page: place a web call, follow where the caller is, play hold music, mute, hang up.
//
// The gateway is the truth: the page polls GET /api/web-calls/<id> (with the call's access token)
// and shows what it says — queued with a place in line, ringing, connected, on hold — and joins
// a room when told to (POST …/join gives a one-use token for it). Media is livekit-client in
// production; in sandbox mode the page joins the loopback LiveKit double through the gateway
// (the double has no WebRTC), and still opens the microphone so refusals behave as for real.
//
// A reload or a dropped connection does not lose the caller's place: the call's rejoin secret is
// kept in sessionStorage (this tab, this origin; never in a URL), and POST …/rejoin trades it for a
// token to the call's room and the next secret, within the gateway's grace period. Leaving the
// page only leaves the room; Hang up is what ends the call at once.
//
// While in line, the caller may leave a phone number instead (POST …/callback): their place becomes
// a callback the gateway dials when it is their turn, and the page's part of the call ends there.

const $ = (id) => document.getElementById(id);

const LABELS = {
  idle: "Ready to call",
  starting: "Starting the call…",
  connecting: "Connecting…",
  queued: "Waiting in line",
  ringing: "Ringing",
  connected: "Connected",
  on_hold: "On hold",
  callback: "We'll call you back",
  ended: "Call ended",
  failed: "Call failed",
  "mic-refused": "Microphone needed",
  reconnecting: "Reconnecting…",
};

// How long to wait before each attempt to get back into the call after the connection dropped
// (the gateway keeps the caller's place for WEB_CALL_REJOIN_S, 30 s by default).
const REJOIN_BACKOFF_MS = [0, 1000, 2000, 4000, 8000];
const SAVED = "web-call";
// A number we can dial: E.164 (what the gateway checks too), once the spaces, dashes, dots and
// brackets people write between digits are taken out.
const E164 = /^\+[1-9]\d{6,14}$/;
const compactNumber = (typed) => typed.replace(/[\s().-]/g, "");

// ------------------------------------------------------------------ the call kept for this tab
function remember(callId, secret) {
  try {
    sessionStorage.setItem(SAVED, JSON.stringify({ id: callId, secret, origin: window.location.origin }));
  } catch {
    /* storage refused (a partitioned frame): the call works, a reload just cannot rejoin it */
  }
}

function forget() {
  try { sessionStorage.removeItem(SAVED); } catch { /* nothing kept */ }
}

function saved() {
  try {
    const kept = JSON.parse(sessionStorage.getItem(SAVED) || "null");
    return kept && kept.origin === window.location.origin && kept.id && kept.secret ? kept : null;
  } catch {
    return null;
  }
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

function micMessage(err) {
  const name = err && err.name;
  if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
    return "Your browser blocked the microphone, so we cannot hear you. Allow the microphone for this site (the icon in the address bar), then press Call again.";
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") {
    return "No microphone was found. Connect one (or use a phone), then press Call again.";
  }
  if (name === "NotReadableError") {
    return "Your microphone is in use by another application. Close it, then press Call again.";
  }
  return `The microphone could not be opened (${(err && err.message) || err}). Press Call to try again.`;
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function request(method, path, { body, access, keepalive = false } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (access) headers.Authorization = `Bearer ${access}`;
  let reply;
  try {
    reply = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), keepalive });
  } catch {
    throw new ApiError(0, "We cannot reach the call service. Check your internet connection and try again.");
  }
  let data = null;
  try { data = await reply.json(); } catch { data = null; }
  if (!reply.ok) throw new ApiError(reply.status, (data && data.error) || `${reply.status} ${reply.statusText}`);
  return data;
}

// ------------------------------------------------------------------ media
/** The loopback LiveKit double: joining is handing the token to it through the gateway. */
class SandboxMedia {
  constructor(access, stream) {
    this.access = access;
    this.stream = stream;
    this.session = null; // { room, identity }
  }

  async join(room, token) {
    const reply = await request("POST", "/call/sandbox/rtc/join", { body: { token }, access: this.access });
    const previous = this.session;
    this.session = { room: reply.room, identity: reply.identity };
    if (previous && previous.room !== reply.room) await this.leave(previous);
  }

  async leave(session = this.session) {
    if (!session) return;
    if (session === this.session) this.session = null;
    await request("POST", "/call/sandbox/rtc/leave", { body: session, access: this.access }).catch(() => {});
  }

  setMuted(muted) { this.stream.getAudioTracks().forEach((t) => { t.enabled = !muted; }); }

  /** The page is going away (a reload, a closed tab): out of the room, the call goes on. */
  depart() {
    if (!this.session) return;
    request("POST", "/call/sandbox/rtc/leave", { body: this.session, access: this.access, keepalive: true }).catch(() => {});
    this.session = null;
  }

  async close() {
    await this.leave();
    this.stream.getTracks().forEach((t) => t.stop());
  }
}

/** The real thing: one livekit-client Room per room the gateway puts the caller in. */
class LiveKitMedia {
  constructor(url, stream, onLost) {
    this.url = url;
    this.stream = stream;
    this.onLost = onLost;
    this.room = null;
    this.muted = false;
    this.elements = new Set();
  }

  async join(roomName, token) {
    const { Room, RoomEvent, Track } = await import("livekit-client");
    const room = new Room({ adaptiveStream: false, dynacast: false });
    room
      .on(RoomEvent.TrackSubscribed, (track) => {
        if (track.kind !== Track.Kind.Audio) return;
        const element = track.attach();
        element.hidden = true;
        document.body.append(element);
        this.elements.add(element);
      })
      .on(RoomEvent.TrackUnsubscribed, (track) => track.detach().forEach((e) => { e.remove(); this.elements.delete(e); }))
      .on(RoomEvent.Disconnected, () => { if (this.room === room) this.onLost(); });
    await room.connect(this.url, token);
    await room.localParticipant.setMicrophoneEnabled(!this.muted);
    const previous = this.room;
    this.room = room;
    if (previous) await previous.disconnect();
    this.stream.getTracks().forEach((t) => t.stop()); // livekit-client holds its own microphone track now
  }

  setMuted(muted) {
    this.muted = muted;
    this.room?.localParticipant.setMicrophoneEnabled(!muted).catch(() => {});
  }

  /** The page is going away (a reload, a closed tab): out of the room, the call goes on. */
  depart() {
    const room = this.room;
    this.room = null;
    room?.disconnect().catch(() => {});
  }

  async close() {
    const room = this.room;
    this.room = null;
    if (room) await room.disconnect();
    this.elements.forEach((e) => e.remove());
    this.stream.getTracks().forEach((t) => t.stop());
  }
}

// ------------------------------------------------------------------ hold music and words
class Hold {
  constructor(element) {
    this.element = element;
    this.synth = null;
    this.playing = false;
  }

  start(url) {
    if (this.playing) return;
    this.playing = true;
    if (url) {
      this.element.src = url;
      this.element.play().catch(() => this.fallback());
      this.element.onerror = () => this.fallback();
    } else {
      this.fallback();
    }
  }

  /** A soft two-note tune made in the browser, when the music cannot be played. */
  fallback() {
    if (!this.playing || this.synth) return;
    try {
      const context = new AudioContext();
      const gain = context.createGain();
      gain.gain.value = 0.04;
      gain.connect(context.destination);
      const notes = [392, 440, 494, 440];
      let step = 0;
      const tick = () => {
        const osc = context.createOscillator();
        osc.frequency.value = notes[step++ % notes.length];
        osc.connect(gain);
        osc.start();
        osc.stop(context.currentTime + 0.8);
      };
      tick();
      this.synth = { context, timer: setInterval(tick, 1000) };
    } catch {
      this.synth = null;
    }
  }

  stop() {
    this.playing = false;
    this.element.pause();
    this.element.removeAttribute("src");
    if (this.synth) {
      clearInterval(this.synth.timer);
      this.synth.context.close().catch(() => {});
      this.synth = null;
    }
  }
}

function say(text) {
  try {
    if (!("speechSynthesis" in window) || !text) return;
    window.speechSynthesis.cancel();
    window.speechSynthesis.speak(new SpeechSynthesisUtterance(text));
  } catch {
    /* announcements are a courtesy: the words are on the page too */
  }
}

// ------------------------------------------------------------------ the call
const page = {
  call: null, // { id, access, secret, poll, stopMeter }
  media: null,
  timer: null,
  muted: false,
  lastState: "idle",
  lastMessage: "",
  joining: false,
  lost: false, // the media connection dropped (see mediaLost)
  reconnecting: false, // getting back into the call after it dropped (see reconnect)
  polls: 0, // which poll loop is the current one (see poll)
  leaving: false, // the caller asked to be called back: the room going away is no failure
  hold: new Hold($("hold-music")),
};

function options() {
  // The button script passes the team and the website's signed context in the fragment
  // (never sent to any server's logs); a plain link may use ?team=.
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  const query = new URLSearchParams(window.location.search);
  const team = fragment.get("team") || query.get("team") || undefined;
  const context = fragment.get("context") || undefined;
  return { team, context };
}

function show(state, message, { position = null } = {}) {
  document.body.dataset.state = state;
  $("state").textContent = LABELS[state] || state;
  if (message !== undefined) $("message").textContent = message;
  $("position").hidden = position === null || position === undefined;
  if (position !== null && position !== undefined) $("position-number").textContent = String(position);
  const live = !["idle", "ended", "failed", "mic-refused", "callback"].includes(state);
  $("call").hidden = live || state === "callback"; // (they will be called: no second call from here)
  $("call").disabled = state === "starting";
  $("hangup").hidden = !live || (state === "reconnecting" && !page.call); // (nothing to hang up yet)
  $("mute").hidden = !live || state === "starting";
  $("level-row").hidden = !live;
  showCallbackChoice(state === "queued" && Boolean(page.call));
  if (["queued", "on_hold", "callback"].includes(state) && page.lastState !== state) say(message);
  page.lastState = state;
}

function fail(state, message) {
  $("error").textContent = message;
  show(state, state === "mic-refused" ? "We need your microphone to put the call through." : "The call could not continue.");
  $("call").hidden = false;
  $("call").textContent = "Call again";
  $("call").focus();
}

function meter(stream) {
  try {
    const context = new AudioContext();
    const analyser = context.createAnalyser();
    analyser.fftSize = 512;
    context.createMediaStreamSource(stream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const timer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      $("level").value = page.muted ? 0 : Math.min(1, Math.sqrt(sum / samples.length) * 4);
    }, 100);
    return () => { clearInterval(timer); context.close().catch(() => {}); };
  } catch {
    return () => {};
  }
}

async function microphone() {
  if (!navigator.mediaDevices?.getUserMedia) throw Object.assign(new Error("this browser cannot use a microphone here (a secure https page is needed)"), { name: "SecurityError" });
  return navigator.mediaDevices.getUserMedia({ audio: true });
}

async function startCall() {
  $("error").textContent = "";
  show("starting", "Asking your browser for the microphone…");
  let stream;
  try {
    stream = await microphone();
  } catch (err) {
    fail("mic-refused", micMessage(err));
    return;
  }
  const stopMeter = meter(stream);
  show("starting", "Placing your call…");
  let created;
  try {
    created = await request("POST", "/api/web-calls", { body: options() });
  } catch (err) {
    stream.getTracks().forEach((t) => t.stop());
    stopMeter();
    const why = err.status === 429 ? `${err.message}` : err.status === 503 ? err.message : `We could not place the call: ${err.message}`;
    fail("failed", why);
    return;
  }
  $("context-note").hidden = created.context !== "verified";
  await enter(created, stream, stopMeter, "connecting", "Connecting your call…");
}

/** Into the call the gateway answered for (a new one, or the same one again after a reload). */
async function enter(reply, stream, stopMeter, state, message) {
  remember(reply.call_id, reply.rejoin_secret);
  page.lost = false;
  page.call = { id: reply.call_id, access: reply.access, secret: reply.rejoin_secret, poll: (reply.poll_s || 1) * 1000, stopMeter };
  page.media = reply.media === "sandbox"
    ? new SandboxMedia(reply.access, stream)
    : new LiveKitMedia(reply.livekit_url, stream, () => mediaLost());
  try {
    show(state, message);
    await page.media.join(reply.room, reply.token);
  } catch (err) {
    await mediaFailed(err);
    return;
  }
  $("hangup").focus();
  poll();
}

/** The page was reloaded during a call: back into the same call, keeping the caller's place. */
async function resumeCall(kept) {
  $("error").textContent = "";
  show("reconnecting", "Getting you back into your call…");
  let stream;
  try {
    stream = await microphone();
  } catch (err) {
    forget();
    fail("mic-refused", micMessage(err));
    return;
  }
  const stopMeter = meter(stream);
  let back;
  try {
    back = await request("POST", `/api/web-calls/${encodeURIComponent(kept.id)}/rejoin`, { body: { secret: kept.secret } });
  } catch (err) {
    stream.getTracks().forEach((t) => t.stop());
    stopMeter();
    if (err.status !== 0 && err.status !== 429) forget(); // (unreachable or busy: a reload may try again)
    fail("failed", rejoinRefused(err));
    return;
  }
  await enter(back, stream, stopMeter, "reconnecting", "Reconnecting…");
}

function rejoinRefused(err) {
  if (err.status === 410) return err.message;
  if (err.status === 403 || err.status === 404) return "This call cannot be rejoined from this page (it continues in another window, or has ended). Press Call to call again.";
  return `We could not get you back into your call: ${err.message}`;
}

async function mediaFailed(err) {
  const message = `The audio connection failed (${(err && err.message) || err}). Check your connection or firewall, then call again.`;
  await endCall({ tell: true });
  fail("failed", message);
}

/** The media connection dropped. Not always a failure: the gateway deletes the room the caller is
 *  leaving when it moves the call (a completed transfer). Ask where the call is now: a move (or
 *  the end) is followed by the poll; otherwise the page gets back into the call (reconnect). */
async function mediaLost() {
  const call = page.call;
  if (!call || page.reconnecting || page.leaving) return;
  page.lost = true;
  clearTimeout(page.timer);
  let status = null;
  try {
    status = await request("GET", `/api/web-calls/${encodeURIComponent(call.id)}`, { access: call.access });
  } catch {
    status = null; // the network is down too: reconnect keeps trying
  }
  if (page.call !== call) return;
  if (status && (["ended", "callback"].includes(status.state) || status.join)) {
    poll();
    return;
  }
  await reconnect(call);
}

/** Back into the call after the connection dropped: a few tries, further apart each time. */
async function reconnect(call) {
  page.reconnecting = true;
  page.hold.stop();
  for (let attempt = 0; attempt < REJOIN_BACKOFF_MS.length; attempt += 1) {
    show("reconnecting", attempt === 0
      ? "Your connection dropped. Reconnecting…"
      : `Your connection dropped. Reconnecting (try ${attempt + 1} of ${REJOIN_BACKOFF_MS.length})…`);
    await sleep(REJOIN_BACKOFF_MS[attempt]);
    if (page.call !== call) return;
    try {
      const back = await request("POST", `/api/web-calls/${encodeURIComponent(call.id)}/rejoin`, { body: { secret: call.secret } });
      remember(call.id, back.rejoin_secret);
      Object.assign(call, { access: back.access, secret: back.rejoin_secret });
      if (page.media instanceof SandboxMedia) page.media.access = back.access;
      await page.media.join(back.room, back.token);
      page.reconnecting = false;
      page.lost = false;
      poll();
      return;
    } catch (err) {
      if (page.call !== call) return;
      if ([403, 404, 409, 410].includes(err.status)) { // (409: the call became a callback meanwhile)
        page.reconnecting = false;
        forget();
        await finish();
        fail("failed", rejoinRefused(err));
        return;
      }
    }
  }
  page.reconnecting = false;
  await endCall();
  fail("failed", "We could not reconnect your call. Check your connection, then call again.");
}

async function poll() {
  const call = page.call;
  if (!call || page.reconnecting) return; // (reconnect polls again once back in the call)
  clearTimeout(page.timer);
  const run = ++page.polls; // one poll loop at a time: an older request in flight is dropped
  const current = () => page.call === call && run === page.polls && !page.reconnecting;
  const access = call.access;
  let status;
  try {
    status = await request("GET", `/api/web-calls/${encodeURIComponent(call.id)}`, { access });
  } catch (err) {
    if (!current()) return;
    if (err.status === 403 && access === call.access) {
      // The call was rejoined from another tab (or by another holder of its secret): it goes on
      // there, not here.
      forget();
      await finish();
      fail("failed", "This call continues in another window or tab.");
      return;
    }
    $("error").textContent = err.status ? err.message : "Reconnecting to the call service…";
    page.timer = setTimeout(poll, call.poll * 2);
    return;
  }
  if (!current()) return;
  $("error").textContent = "";
  apply(status);
  if (["ended", "callback"].includes(status.state)) return;
  if (status.join && !page.joining) {
    page.joining = true;
    try {
      const token = await request("POST", `/api/web-calls/${encodeURIComponent(call.id)}/join`, { access: call.access });
      await page.media.join(token.room, token.token);
    } catch (err) {
      if (err.status !== 409) { page.joining = false; await mediaFailed(err); return; }
    }
    page.joining = false;
  }
  if (current()) page.timer = setTimeout(poll, call.poll);
}

function apply(status) {
  if (["queued", "on_hold"].includes(status.state)) page.hold.start(status.hold_music_url);
  else page.hold.stop();
  show(status.state, status.message, { position: status.state === "queued" ? status.position : null });
  if (status.join) page.lost = false; // the call moved: joining the next room, not a failure
  if (status.state === "ended") {
    forget();
    if (page.lost && status.message === "You ended the call.") {
      $("error").textContent = "The audio connection was lost, so the call ended. Check your connection, then call again.";
    }
    finish();
    $("call").hidden = false;
    $("call").textContent = "Call again";
  }
  if (status.state === "callback") {
    // The place in line is a callback now: the page's part is over (the room is gone, nothing to rejoin).
    forget();
    finish();
  }
}

// ------------------------------------------------------------------ call me back instead
function showCallbackChoice(visible) {
  const section = $("callback");
  if (section.hidden === !visible) return;
  section.hidden = !visible;
  if (!visible) closeCallbackForm({ focus: false });
}

function openCallbackForm() {
  $("callback-form").hidden = false;
  $("callback-open").setAttribute("aria-expanded", "true");
  $("callback-open").hidden = true;
  $("callback-number").focus();
}

function closeCallbackForm({ focus = true } = {}) {
  $("callback-form").hidden = true;
  $("callback-open").hidden = false;
  $("callback-open").setAttribute("aria-expanded", "false");
  callbackError("");
  if (focus) $("callback-open").focus();
}

function callbackError(message) {
  $("callback-error").textContent = message;
  if (message) $("callback-number").setAttribute("aria-invalid", "true");
  else $("callback-number").removeAttribute("aria-invalid");
}

async function askForCallback(event) {
  event.preventDefault();
  const call = page.call;
  if (!call) return;
  const number = compactNumber($("callback-number").value);
  if (!E164.test(number)) {
    callbackError(number
      ? "That is not a full phone number. Start with + and your country code, like +1 555 123 4567."
      : "Enter the phone number we should call.");
    $("callback-number").focus();
    return;
  }
  callbackError("");
  $("callback-submit").disabled = true;
  page.leaving = true;
  let status;
  try {
    status = await request("POST", `/api/web-calls/${encodeURIComponent(call.id)}/callback`, { body: { number }, access: call.access });
  } catch (err) {
    page.leaving = false;
    $("callback-submit").disabled = false;
    if (err.status === 400) {
      callbackError(err.message.charAt(0).toUpperCase() + err.message.slice(1) + ".");
      $("callback-number").focus();
    } else {
      callbackError(err.status === 409 ? "You can no longer ask for a callback: your call is moving on." : err.message);
    }
    return;
  }
  $("callback-submit").disabled = false;
  if (page.call !== call) return;
  clearTimeout(page.timer);
  page.polls += 1; // a poll in flight is no longer the current one
  apply(status);
  $("state").focus();
}

async function finish() {
  clearTimeout(page.timer);
  page.hold.stop();
  const call = page.call;
  page.call = null;
  call?.stopMeter?.();
  const media = page.media;
  page.media = null;
  await media?.close().catch(() => {});
}

async function endCall({ tell = true, keepalive = false } = {}) {
  const call = page.call;
  if (!call) return;
  forget();
  if (tell) {
    await request("POST", `/api/web-calls/${encodeURIComponent(call.id)}/hangup`, { access: call.access, keepalive }).catch(() => {});
  }
  await finish();
}

async function hangUp() {
  $("hangup").disabled = true;
  await endCall();
  $("hangup").disabled = false;
  show("ended", "You ended the call.");
  $("call").textContent = "Call again";
  $("call").focus();
}

function toggleMute() {
  page.muted = !page.muted;
  page.media?.setMuted(page.muted);
  $("mute").setAttribute("aria-pressed", String(page.muted));
  $("mute").textContent = page.muted ? "Unmute" : "Mute";
}

$("call").addEventListener("click", startCall);
$("hangup").addEventListener("click", hangUp);
$("mute").addEventListener("click", toggleMute);
$("callback-open").addEventListener("click", openCallbackForm);
$("callback-cancel").addEventListener("click", () => closeCallbackForm());
$("callback-form").addEventListener("submit", askForCallback);
// Leaving the page (a reload, a closed tab) only leaves the room: the gateway keeps the caller's
// place for a while, and this tab's next load gets back into the call (or the call ends then).
window.addEventListener("pagehide", () => { if (page.call) page.media?.depart(); });
window.addEventListener("pageshow", (event) => {
  if (event.persisted && page.call && !page.reconnecting) reconnect(page.call); // back from the page cache
});
document.body.dataset.ready = "true";
const kept = saved();
if (kept) resumeCall(kept);
