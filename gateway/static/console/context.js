// What every part of the console shares: the REST client, the console's configuration,
// the signed-in agent and the team. Each other module keeps its own state to itself.

import { Api, ApiError } from "./api.js";

export const session = {
  config: null, // GET /console/config: media mode, LiveKit URL, the agent when signed in
  agent: null, // { id, name, status, … } while signed in
  agents: [], // the team's presence, from the event stream
};

let unauthorized = () => {};
/** fn(message): the session ended under us (a 401 from a signed-in request). */
export function onUnauthorized(fn) {
  unauthorized = fn;
}

export const api = new Api({ onUnauthorized: (message) => unauthorized(message) });

export const me = () => session.agent?.id;
export const nameOf = (id) => session.agents.find((a) => a.id === id)?.name || id;
export const names = () => Object.fromEntries(session.agents.map((a) => [a.id, a.name]));

export function errorText(err) {
  return err instanceof ApiError ? err.message : String(err?.message || err);
}

/** Disable a button while its action runs, so a double click sends one request. */
export async function busy(button, action) {
  if (button.getAttribute("aria-busy") === "true") return;
  button.setAttribute("aria-busy", "true");
  const wasDisabled = button.disabled;
  button.disabled = true;
  try {
    return await action();
  } finally {
    button.removeAttribute("aria-busy");
    button.disabled = wasDisabled;
  }
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
