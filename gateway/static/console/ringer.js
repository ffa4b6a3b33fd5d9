// The incoming-call ring, synthesised with WebAudio (no audio file to load).
//
// Browsers only let a page make sound after a user gesture, so sound starts switched off
// and the agent turns it on with a visible button (a click is the gesture). The choice is
// remembered; after a reload the button says the browser is waiting for a click.

const PREF_KEY = "console.sound";

export class Ringer {
  constructor(onChange) {
    this.onChange = onChange || (() => {});
    this.context = null;
    this.wanted = localStorage.getItem(PREF_KEY) === "on";
    this.ringing = false;
    this.timer = null;
  }

  /** "off" | "on" | "blocked" (wanted, but no gesture yet in this page). */
  get state() {
    if (!this.wanted) return "off";
    return this.context && this.context.state === "running" ? "on" : "blocked";
  }

  /** Call from a click handler only. */
  async toggle() {
    if (this.state === "on") {
      this.wanted = false;
      localStorage.setItem(PREF_KEY, "off");
      this.stopTone();
    } else {
      this.wanted = true;
      localStorage.setItem(PREF_KEY, "on");
      await this.unlock();
      this.chime(0.15); // a short confirmation that sound works
    }
    this.onChange(this.state);
    if (this.ringing) this.start();
  }

  /** Any user gesture may unlock audio when the agent asked for sound earlier. */
  async unlock() {
    if (!this.wanted) return;
    try {
      this.context = this.context || new AudioContext();
      if (this.context.state !== "running") await this.context.resume();
    } catch (err) {
      console.warn("audio unavailable", err);
    }
    this.onChange(this.state);
  }

  start() {
    this.ringing = true;
    if (this.timer || this.state !== "on") return;
    const ring = () => this.chime(1.2);
    ring();
    this.timer = setInterval(ring, 3000);
  }

  stop() {
    this.ringing = false;
    this.stopTone();
  }

  stopTone() {
    clearInterval(this.timer);
    this.timer = null;
  }

  /** Two soft alternating tones (a "ding-dong" warble) for `seconds`. */
  chime(seconds) {
    const ctx = this.context;
    if (!ctx || ctx.state !== "running") return;
    const gain = ctx.createGain();
    gain.connect(ctx.destination);
    const now = ctx.currentTime;
    gain.gain.setValueAtTime(0.0001, now);
    gain.gain.exponentialRampToValueAtTime(0.2, now + 0.03);
    gain.gain.setValueAtTime(0.2, now + seconds - 0.1);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + seconds);
    const osc = ctx.createOscillator();
    osc.type = "sine";
    for (let t = 0; t < seconds; t += 0.2) {
      osc.frequency.setValueAtTime(Math.round(t / 0.2) % 2 ? 659 : 880, now + t);
    }
    osc.connect(gain);
    osc.start(now);
    osc.stop(now + seconds);
  }
}
