// The outcome card: how the last call or offer ended for this agent, until dismissed.

import { $, announce, focusOn, setText, show } from "./ui.js";

/** Announced once here (the card is not a live region, so it is not read a second time). */
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
  // Dismissed: focus goes where the next call will appear.
  $("outcome-dismiss").addEventListener("click", () => { hideOutcome(); focusOn("offers-heading"); });
}
