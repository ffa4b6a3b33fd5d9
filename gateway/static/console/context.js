// What every part of the console shares: the REST client, the console's configuration,
// the signed-in agent and the team. Each other module keeps its own state to itself.

import { Api, ApiError } from "./api.js";
import { isEnabled, syncDisabled } from "./ui.js";

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

/**
 * Run a button's action once at a time: presses while it runs (or while the button is
 * unavailable) are ignored. The button stays focusable (aria-disabled, never disabled), so
 * a keyboard user's focus is not dropped to <body> in the middle of the action.
 */
export async function busy(button, action) {
  if (!isEnabled(button)) return;
  button.setAttribute("aria-busy", "true");
  syncDisabled(button);
  try {
    return await action();
  } finally {
    button.removeAttribute("aria-busy");
    syncDisabled(button);
  }
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
