// Today's calls (each with its timeline on demand) and the live activity list.

import { api, debounce, errorText, names, session } from "./context.js";
import { $, callStateLabel, clock, describeEvent, h, show } from "./ui.js";

export async function refreshHistory() {
  if (!session.agent) return;
  let calls, missed;
  try {
    [calls, missed] = await Promise.all([api.calls().then((r) => r.calls), api.missed().then((r) => r.missed)]);
  } catch {
    return;
  }
  const list = $("history");
  const existing = new Map([...list.children].filter((li) => li.dataset.call).map((li) => [li.dataset.call, li]));
  const items = calls.map((c) => {
    let li = existing.get(c.id);
    if (!li) {
      const details = h("details", {}, h("summary", {}), h("ol", { class: "timeline" }, h("li", { class: "muted" }, "Loading…")));
      details.addEventListener("toggle", () => { if (details.open) loadHistoryTimeline(c.id, details); });
      li = h("li", { dataset: { call: c.id } }, details);
    }
    const details = li.querySelector("details");
    details.querySelector("summary").textContent =
      `${clock(c.created_at)} — ${c.withheld ? "Withheld number" : c.from} — ${callStateLabel(c.state)}${c.end_reason ? ` (${c.end_reason})` : ""}`;
    if (details.open) loadHistoryTimeline(c.id, details);
    return { at: c.created_at, li };
  });
  // Offers that rang out: the call itself is not mine to open, only that I missed it.
  for (const m of missed) {
    items.push({ at: m.at, li: h("li", { class: "missed", dataset: { missed: m.call_id } },
      `${clock(m.at)} — ${m.caller || "a caller"} — Missed`) });
  }
  items.sort((x, y) => (x.at < y.at ? 1 : x.at > y.at ? -1 : 0));
  list.replaceChildren(...items.map((item) => item.li));
  show("history-empty", items.length === 0);
}

/** Calls' states in today's list: one request per burst of events. */
export const refreshHistorySoon = debounce(refreshHistory, 750);

async function loadHistoryTimeline(callId, details) {
  try {
    const { timeline } = await api.timeline(callId);
    details.querySelector("ol").replaceChildren(...timeline.map((e) => h("li", { dataset: { kind: e.kind } },
      h("time", { datetime: e.at }, clock(e.at)), " ", describeEvent(e, names()))));
  } catch (err) {
    details.querySelector("ol").replaceChildren(h("li", { class: "error" }, `Could not load: ${errorText(err)}`));
  }
}

export function addActivity(entry) {
  const list = $("activity");
  list.prepend(h("li", { dataset: { id: entry.id, kind: entry.kind } },
    h("time", { datetime: entry.at }, clock(entry.at)), " ", describeEvent(entry, names())));
  while (list.childElementCount > 50) list.lastElementChild.remove();
}

export function bindHistory() {
  $("history-refresh").addEventListener("click", refreshHistory);
}
