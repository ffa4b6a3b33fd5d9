// The console's live feed: Server-Sent Events from GET /api/events.
//
// The browser reconnects by itself after a dropped stream and sends Last-Event-ID; when it
// gives up (an error status such as 503, or the network gone), we reconnect ourselves with
// ?after=<last id>, backing off up to 15 s. Timeline entries carry ids and are de-duplicated
// here, so a resumed stream never delivers an entry twice to the page.

const MAX_BACKOFF_MS = 15000;

export class EventStream {
  /**
   * handlers: { timeline(entry), offers(list), presence(list), ready(info), signedOut(reason),
   *             status("live"|"reconnecting"|"stopped"), beforeReconnect(): Promise<boolean> }
   * beforeReconnect resolves false when the session is gone (stop reconnecting).
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.lastId = null;
    this.source = null;
    this.timer = null;
    this.backoff = 1000;
    this.seen = new Set();
    this.stopped = true;
    this.brief = false;
    this.onOnline = () => { if (!this.stopped && !this.source) this.reconnectSoon(0); };
  }

  start() {
    this.stopped = false;
    window.addEventListener("online", this.onOnline);
    this.open();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.onOnline);
    clearTimeout(this.timer);
    this.close();
    this.handlers.status?.("stopped");
  }

  close() {
    if (this.source) {
      this.source.close();
      this.source = null;
    }
  }

  open() {
    this.close();
    const url = this.lastId !== null ? `${this.url}?after=${encodeURIComponent(this.lastId)}` : this.url;
    const source = new EventSource(url, { withCredentials: true });
    this.source = source;
    source.onopen = () => {
      this.backoff = 1000;
      this.handlers.status?.("live");
    };
    source.onerror = () => {
      if (this.stopped || source !== this.source) return;
      if (this.brief && source.readyState === EventSource.CONNECTING) {
        // A brief stream ended as announced: the browser comes back after the server's retry.
        this.brief = false;
        return;
      }
      this.handlers.status?.("reconnecting");
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (error status or network): we take over.
        this.source = null;
        this.reconnectSoon(this.backoff);
        this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF_MS);
      }
    };
    source.addEventListener("ready", (event) => {
      const info = JSON.parse(event.data);
      if (this.lastId === null) this.lastId = info.last_id;
      this.handlers.ready?.(info);
    });
    source.addEventListener("timeline", (event) => {
      const id = Number(event.lastEventId);
      if (Number.isFinite(id)) {
        if (this.seen.has(id)) return;
        this.seen.add(id);
        if (this.seen.size > 2000) this.seen = new Set([...this.seen].slice(-1000));
        this.lastId = Math.max(this.lastId ?? 0, id);
      }
      this.handlers.timeline?.(JSON.parse(event.data));
    });
    source.addEventListener("offers", (event) => this.handlers.offers?.(JSON.parse(event.data).offers));
    source.addEventListener("presence", (event) => this.handlers.presence?.(JSON.parse(event.data).agents));
    // The server has more open consoles than it keeps streams for: this one is served in brief
    // streams (what is new, then a reconnect after a few seconds). Still live, not reconnecting.
    source.addEventListener("brief", () => { this.brief = true; });
    source.addEventListener("signed_out", (event) => {
      this.stop();
      this.handlers.signedOut?.(JSON.parse(event.data).reason);
    });
  }

  reconnectSoon(delay) {
    clearTimeout(this.timer);
    this.timer = setTimeout(async () => {
      if (this.stopped) return;
      const stillSignedIn = await (this.handlers.beforeReconnect?.() ?? Promise.resolve(true));
      if (stillSignedIn && !this.stopped) this.open();
    }, delay);
  }
}
