// Media adapters: how the console gets the agent's audio into a LiveKit room.
//
//   livekit  — the real thing: livekit-client's Room.connect(url, token) and the local mic track.
//   sandbox  — the gateway runs against the loopback fake LiveKit, which has no WebRTC: joining
//              is POSTing the token (through a same-origin proxy) to the fake's /_sim/rtc/join,
//              which validates it exactly as LiveKit does; leaving is /_sim/rtc/leave. The mic is
//              still opened locally so mute and the level meter behave as they will for real.
//
// Both report through the same callbacks: onState(state, detail) with state one of
// "connecting" | "connected" | "reconnecting" | "disconnected" (unexpected) | "audio-blocked",
// onLevel(0..1 or null when no mic), onMicError(message).

export class MediaError extends Error {}

/** Microphone level from a MediaStreamTrack, sampled ten times a second. */
class LevelMeter {
  constructor(onLevel) {
    this.onLevel = onLevel;
    this.context = null;
    this.timer = null;
  }

  attach(track) {
    this.detach();
    try {
      this.context = new AudioContext();
      this.context.resume().catch(() => {});
      const source = this.context.createMediaStreamSource(new MediaStream([track]));
      const analyser = this.context.createAnalyser();
      analyser.fftSize = 512;
      source.connect(analyser);
      const samples = new Float32Array(analyser.fftSize);
      this.timer = setInterval(() => {
        analyser.getFloatTimeDomainData(samples);
        let sum = 0;
        for (const s of samples) sum += s * s;
        const rms = Math.sqrt(sum / samples.length);
        this.onLevel(track.enabled ? Math.min(1, rms * 4) : 0);
      }, 100);
    } catch (err) {
      console.warn("level meter unavailable", err);
    }
  }

  detach() {
    clearInterval(this.timer);
    this.timer = null;
    if (this.context) this.context.close().catch(() => {});
    this.context = null;
    this.onLevel(null);
  }
}

function micErrorMessage(err) {
  const name = err && err.name;
  if (name === "NotAllowedError" || name === "SecurityError") {
    return "Microphone blocked: allow it for this site in the browser's settings. The caller cannot hear you.";
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") {
    return "No microphone found: plug one in, then press Reconnect audio. The caller cannot hear you.";
  }
  if (name === "NotReadableError") {
    return "The microphone is in use by another application. The caller cannot hear you.";
  }
  return `Microphone unavailable (${(err && err.message) || err}). The caller cannot hear you.`;
}

class SandboxMedia {
  constructor(api, callbacks) {
    this.api = api;
    this.cb = callbacks;
    this.room = null;
    this.micOn = true;
    this.stream = null;
    this.meter = new LevelMeter(callbacks.onLevel);
  }

  get kind() { return "sandbox"; }

  async connect(room, token) {
    await this.leaveRoom();
    this.cb.onState("connecting");
    let reply;
    try {
      reply = await this.api.post("/console/sandbox/rtc/join", { token });
    } catch (err) {
      throw new MediaError(`the media server refused to connect (${err.message})`);
    }
    this.room = reply.room;
    await this.openMic();
    this.cb.onState("connected", { room: this.room });
  }

  /** The page was reloaded while the agent stays in the room (the fake keeps no live connection). */
  async adopt(room) {
    this.room = room;
    await this.openMic();
    this.cb.onState("connected", { room });
  }

  async openMic() {
    if (this.stream) return;
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const [track] = this.stream.getAudioTracks();
      track.enabled = this.micOn;
      this.meter.attach(track);
    } catch (err) {
      this.cb.onMicError(micErrorMessage(err));
    }
  }

  setMicEnabled(on) {
    this.micOn = on;
    this.stream?.getAudioTracks().forEach((t) => { t.enabled = on; });
  }

  async leaveRoom() {
    const room = this.room;
    this.room = null;
    if (room) {
      // The gateway may have removed us already (moved to a consult room, call over): fine.
      await this.api.post("/console/sandbox/rtc/leave", { room }).catch(() => {});
    }
  }

  async disconnect({ local = false } = {}) {
    if (local) this.room = null;
    else await this.leaveRoom();
    this.meter.detach();
    this.stream?.getTracks().forEach((t) => t.stop());
    this.stream = null;
  }
}

class LiveKitMedia {
  constructor(api, callbacks) {
    this.api = api;
    this.cb = callbacks;
    this.lk = null;
    this.room = null;
    this.roomName = null;
    this.micOn = true;
    this.leaving = false;
    this.connecting = false;
    this.meter = new LevelMeter(callbacks.onLevel);
    this.audioElements = new Set();
  }

  get kind() { return "livekit"; }

  async load() {
    if (this.lk) return this.lk;
    try {
      // Bundled by esbuild (npm run build) into a chunk loaded only in livekit mode.
      this.lk = await import("livekit-client");
    } catch (err) {
      throw new MediaError("the LiveKit client is not built into this page (run npm run build)");
    }
    return this.lk;
  }

  async connect(roomName, token, url) {
    const { Room, RoomEvent, Track } = await this.load();
    await this.disconnect();
    this.cb.onState("connecting");
    const room = new Room({
      adaptiveStream: false,
      dynacast: false,
      audioCaptureDefaults: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    this.room = room;
    this.roomName = roomName;
    room
      .on(RoomEvent.Reconnecting, () => this.cb.onState("reconnecting"))
      .on(RoomEvent.Reconnected, () => this.cb.onState("connected", { room: roomName }))
      .on(RoomEvent.Disconnected, (reason) => {
        // A failed connect() also ends in Disconnected: that is connect's error to report, not a blip.
        if (this.room !== room || this.connecting) return;
        this.room = null;
        this.meter.detach();
        if (!this.leaving) this.cb.onState("disconnected", { reason });
      })
      .on(RoomEvent.TrackSubscribed, (track) => {
        if (track.kind !== Track.Kind.Audio) return;
        const element = track.attach();
        element.hidden = true;
        document.body.append(element);
        this.audioElements.add(element);
      })
      .on(RoomEvent.TrackUnsubscribed, (track) => {
        for (const element of track.detach()) {
          element.remove();
          this.audioElements.delete(element);
        }
      })
      .on(RoomEvent.AudioPlaybackStatusChanged, () => {
        if (!room.canPlaybackAudio) this.cb.onState("audio-blocked");
      });
    this.connecting = true;
    try {
      await room.connect(url, token);
    } catch (err) {
      this.room = null;
      throw new MediaError(`could not reach the media server (${err.message || err})`);
    } finally {
      this.connecting = false;
    }
    this.cb.onState("connected", { room: roomName });
    await this.publishMic();
  }

  async publishMic() {
    const { Track } = this.lk;
    try {
      await this.room.localParticipant.setMicrophoneEnabled(this.micOn);
      const publication = this.room.localParticipant.getTrackPublication(Track.Source.Microphone);
      if (publication?.track) this.meter.attach(publication.track.mediaStreamTrack);
    } catch (err) {
      this.cb.onMicError(micErrorMessage(err));
    }
  }

  /** Start remote audio after the browser blocked autoplay (call from a click). */
  async startAudio() {
    await this.room?.startAudio();
  }

  async adopt(roomName) {
    // A LiveKit connection does not survive a reload: the caller of adopt() offers a rejoin instead.
    throw new MediaError(`audio for ${roomName} was disconnected when the page reloaded`);
  }

  setMicEnabled(on) {
    this.micOn = on;
    this.room?.localParticipant.setMicrophoneEnabled(on).catch((err) => this.cb.onMicError(micErrorMessage(err)));
  }

  async disconnect() {
    const room = this.room;
    this.room = null;
    this.meter.detach();
    if (room) {
      this.leaving = true;
      try { await room.disconnect(); } finally { this.leaving = false; }
    }
    for (const element of this.audioElements) element.remove();
    this.audioElements.clear();
  }
}

export function createMedia(kind, api, callbacks) {
  return kind === "sandbox" ? new SandboxMedia(api, callbacks) : new LiveKitMedia(api, callbacks);
}
