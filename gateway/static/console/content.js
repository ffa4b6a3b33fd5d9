// Rendering of what agents read about a call: the transfer summary and the transcript with notes.
// Shared by B's offer card (before accepting) and the call panel.

import { nameOf } from "./context.js";
import { clock, h } from "./ui.js";

/** A's transfer notes, as typed: usually the best account of the call, so B reads them first. */
export function transferNotes(t, fromName) {
  if (!t || !t.notes) return null;
  return h("div", { class: "transfer-notes" }, h("h4", {}, `Notes from ${fromName}`), h("p", {}, t.notes));
}

export function summaryBlock(summary) {
  const list = (items) => (items && items.length
    ? h("ul", {}, items.map((item) => h("li", {}, item)))
    : h("span", { class: "muted" }, "—"));
  return h("dl", { class: "summary-fields" },
    h("dt", {}, "Reason"), h("dd", {}, summary.reason || "—"),
    h("dt", {}, "Key facts"), h("dd", {}, list(summary.key_facts)),
    h("dt", {}, "Tried"), h("dd", {}, list(summary.tried)),
    h("dt", {}, "Mood"), h("dd", {}, summary.mood || "—"),
    h("dt", {}, "Next step"), h("dd", {}, summary.next_step || "—"),
  );
}

export function transcriptItems({ transcript, notes }) {
  const items = [
    ...transcript.map((line) => ({ at: line.at, who: line.speaker, text: line.text, kind: "line" })),
    ...notes.map((note) => ({ at: note.at, who: `Note (${nameOf(note.agent_id)})`, text: note.text, kind: "note" })),
  ].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  return items.map((item) => h("li", { class: `transcript-${item.kind}`, dataset: { key: `${item.at}|${item.who}|${item.text}` } },
    h("time", { datetime: item.at }, clock(item.at)), " ",
    h("strong", {}, `${item.who}:`), " ", item.text));
}
