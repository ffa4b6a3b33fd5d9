// The outcome card: how the last call or offer ended for this agent, until dismissed.

import { $, announce, setText, show } from "./ui.js";

export function showOutcome(text, { focus = false } = {}) {
  setText("outcome-text", text);
  show("outcome", true);
  announce(text, true);
  if (focus) $("outcome-dismiss").focus();
}

export function hideOutcome() {
  show("outcome", false);
}

export function bindOutcome() {
  $("outcome-dismiss").addEventListener("click", () => { hideOutcome(); $("main").focus(); });
}
