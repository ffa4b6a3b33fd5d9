// The REST API as the console uses it: same-origin, session cookie, and the
// X-Requested-With header the server requires on cookie-authenticated writes.

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export class Api {
  /** onUnauthorized(): called once per 401 from a signed-in request (session expired or reset). */
  constructor({ onUnauthorized } = {}) {
    this.onUnauthorized = onUnauthorized || (() => {});
  }

  async request(method, path, body) {
    const init = {
      method,
      credentials: "same-origin",
      headers: { "X-Requested-With": "console", Accept: "application/json" },
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "The gateway cannot be reached. Check your connection.", null);
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const message = (data && data.error) || `${response.status} ${response.statusText}`;
      if (response.status === 401 && !path.startsWith("/api/auth/")) this.onUnauthorized(message);
      throw new ApiError(response.status, message, data);
    }
    return data;
  }

  get(path) { return this.request("GET", path); }
  post(path, body = {}) { return this.request("POST", path, body); }

  // Session
  config() { return this.get("/console/config"); }
  login(credential) { return this.post("/api/auth/login", { credential }); }
  logout() { return this.post("/api/auth/logout"); }
  me() { return this.get("/api/me"); }

  // Presence
  agents() { return this.get("/api/agents"); }
  setStatus(status) { return this.post("/api/agents/me/status", { status }); }
  offers() { return this.get("/api/agents/me/offers"); }
  missed() { return this.get("/api/agents/me/missed"); }

  // Calls
  calls() { return this.get("/api/calls"); }
  call(id) { return this.get(`/api/calls/${encodeURIComponent(id)}`); }
  timeline(id) { return this.get(`/api/calls/${encodeURIComponent(id)}/timeline`); }
  transcript(id) { return this.get(`/api/calls/${encodeURIComponent(id)}/transcript`); }
  addNote(id, text) { return this.post(`/api/calls/${encodeURIComponent(id)}/notes`, { text }); }
  accept(id) { return this.post(`/api/calls/${encodeURIComponent(id)}/accept`); }
  decline(id) { return this.post(`/api/calls/${encodeURIComponent(id)}/decline`); }
  hangup(id) { return this.post(`/api/calls/${encodeURIComponent(id)}/hangup`); }
  joinRoom(room) { return this.post("/api/rooms/join", { room }); }

  // Transfers
  initiateTransfer(body) { return this.post("/api/transfer/initiate", body); }
  transfer(id) { return this.get(`/api/transfers/${encodeURIComponent(id)}`); }
  transferAction(id, action) { return this.post(`/api/transfers/${encodeURIComponent(id)}/${action}`); }

  // Sandbox
  sandboxCall(body = {}) { return this.post("/console/sandbox/call", body); }
}
