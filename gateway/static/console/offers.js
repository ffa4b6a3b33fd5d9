// Incoming calls and transfers ringing for this agent: the cards, the ring, accept and decline.
// A transfer's card shows B what A knows before B answers: the summary and the transcript.

import { joinMedia } from "./audio.js";
import { openCall, scheduleSync } from "./call.js";
import { summaryBlock, transcriptItems, transferNotes } from "./content.js";
import { api, busy, errorText } from "./context.js";
import { showOutcome } from "./outcome.js";
import { Ringer } from "./ringer.js";
import { $, announce, duration, focusOn, h, setText, show } from "./ui.js";

const offers = {
  list: [], // the server's latest snapshot
  previews: new Map(), // transfer id -> { transcript, summary, error }
  known: new Set(), // leg ids already announced
  handled: new Set(), // leg ids this page accepted or declined
};

export let ringer = null;

/** onSound(state): the ring's sound state changed ("on", "off", "blocked"). */
export function createRinger(onSound) {
  ringer = new Ringer(onSound);
  return ringer;
}

/** The server's snapshot of what rings for me (event stream). */
export function setOffers(list) {
  offers.list = list;
  renderOffers();
}

export function clearOffers() {
  offers.list = [];
  offers.known.clear();
  offers.handled.clear();
  ringer.stop();
  $("offer-list").replaceChildren();
}

/** A timeline entry arrived: a ringing transfer's preview may have news. */
export function onOfferEntry(entry) {
  if (!["summary_ready", "transcript", "note_added"].includes(entry.kind)) return;
  for (const offer of offers.list) {
    if (offer.kind === "transfer" && offer.call_id === entry.call_id) loadPreview(offer);
  }
}

function renderOffers() {
  const list = $("offer-list");
  const byLeg = new Map([...list.children].map((li) => [li.dataset.leg, li]));
  const now = Date.now();
  for (const offer of offers.list) {
    let li = byLeg.get(offer.leg_id);
    offer.startedAt = now - offer.waiting_s * 1000;
    if (!li) {
      li = buildOffer(offer);
      list.append(li);
      if (!offers.known.has(offer.leg_id)) {
        offers.known.add(offer.leg_id);
        announce(offer.kind === "transfer"
          ? `Incoming transfer from ${offer.from_agent}, ${offer.channel === "web" ? "web caller" : "caller"} ${offer.caller}.`
          : offer.callback ? `Callback for ${offer.caller}: accept and we dial them.`
          : `Incoming ${offer.channel === "web" ? "web call" : "call"} from ${offer.caller}.`, true);
        if (offer.kind === "transfer") loadPreview(offer);
      }
    }
    li.dataset.startedAt = String(offer.startedAt);
    if (offer.kind === "transfer") renderPreview(li, offer);
    byLeg.delete(offer.leg_id);
  }
  for (const li of byLeg.values()) {
    if (li.contains(document.activeElement)) focusOn(nextOfferControl(li) || "offers-heading");
    li.remove();
    if (!offers.handled.has(li.dataset.leg)) offerWithdrawn(li);
  }
  const any = offers.list.length > 0;
  if (!any && document.activeElement === $("offer-jump")) focusOn("offers-heading");
  show("offer-jump", any);
  show("offers-empty", !any);
  $("offers").classList.toggle("ringing", any);
  if (any) ringer.start(); else ringer.stop();
  tickOffers();
}

/** An offer ended without this page answering it: missed, taken elsewhere, or withdrawn. */
function offerWithdrawn(li) {
  const heading = li.querySelector("h3").textContent;
  showOutcome(li.classList.contains("offer-transfer")
    ? `${heading}: no longer offered to you (withdrawn, or it rang out).`
    : `${heading}: no longer ringing for you (answered elsewhere, or it rang out and went to the next agent).`);
}

function buildOffer(offer) {
  const isTransfer = offer.kind === "transfer";
  const headingId = `offer-${offer.leg_id}-h`;
  const accept = h("button", { type: "button", class: "accept", "aria-describedby": headingId }, "Accept");
  const decline = h("button", { type: "button", class: "decline secondary", "aria-describedby": headingId }, "Decline");
  const error = h("p", { class: "error", role: "alert" });
  accept.addEventListener("click", () => busy(accept, () => acceptOffer(offer, error)));
  decline.addEventListener("click", () => busy(decline, () => declineOffer(offer, error)));
  return h("li", { class: `offer offer-${offer.kind}`, dataset: { leg: offer.leg_id, call: offer.call_id } },
    h("h3", { id: headingId }, isTransfer
      ? `Transfer from ${offer.from_agent} — ${offer.channel === "web" ? "web caller" : "caller"} ${offer.caller}`
      : offer.callback ? `Callback for ${offer.caller} — accept and we dial them`
      : offer.transfer ? `Call from ${offer.caller}, transferred by ${offer.from_agent} to your team`
      : `Incoming ${offer.channel === "web" ? "web call" : "call"} from ${offer.caller}`),
    offer.channel === "web" ? webContext(offer.context) : null,
    h("p", { class: "wait" }, "Waiting ", h("span", { class: "wait-time" }, "0:00")),
    isTransfer ? h("div", { class: "preview" },
      transferNotes(offer.transfer, offer.from_agent),
      h("h4", {}, "Summary"), h("div", { class: "preview-summary" }, "Preparing the summary…"),
      h("details", { class: "preview-transcript" }, h("summary", {}, "Transcript so far"),
        h("div", { class: "scroll-box", role: "region", tabindex: "0", "aria-label": "Transcript so far" },
          h("ol", { class: "transcript" }))),
    ) : null,
    h("div", { class: "controls" }, accept, decline),
    error,
  );
}

const CONTEXT_LABELS = { customer_id: "Customer id", name: "Name", email: "Email", page: "Page", order: "Order", note: "Note" };

/** A web call's context, as the website signed it (the gateway verified the signature). */
function webContext(context) {
  if (!context) {
    return h("p", { class: "web-context" }, "Web call from the website: no verified details about the caller.");
  }
  return h("div", { class: "web-context" },
    h("p", {}, "Web call. Verified by the website:"),
    h("dl", {}, ...Object.entries(context).flatMap(([key, value]) => [
      h("dt", {}, CONTEXT_LABELS[key] || key), h("dd", {}, value),
    ])));
}

async function loadPreview(offer) {
  const id = offer.transfer.id;
  const preview = offers.previews.get(id) || {};
  try {
    const [transcript, transfer] = await Promise.all([api.transcript(offer.call_id), api.transfer(id)]);
    preview.transcript = transcript;
    preview.summary = transfer.transfer.summary;
  } catch (err) {
    preview.error = errorText(err);
  }
  offers.previews.set(id, preview);
  const li = $("offer-list").querySelector(`[data-leg="${CSS.escape(offer.leg_id)}"]`);
  if (li) renderPreview(li, offer);
}

function renderPreview(li, offer) {
  const preview = offers.previews.get(offer.transfer.id) || {};
  const summary = offer.transfer.summary || preview.summary;
  // Rebuilt only when it changed: B may be reading it (and a screen reader with B).
  const box = li.querySelector(".preview-summary");
  const shown = JSON.stringify(summary || null);
  if (box.dataset.shown !== shown) {
    box.dataset.shown = shown;
    box.replaceChildren(summary ? summaryBlock(summary) : "Preparing the summary…");
  }
  if (preview.transcript) {
    const list = li.querySelector(".preview-transcript ol");
    const text = JSON.stringify(preview.transcript);
    if (list.dataset.shown !== text) {
      list.dataset.shown = text;
      list.replaceChildren(...transcriptItems(preview.transcript));
    }
  }
}

async function acceptOffer(offer, errorEl) {
  errorEl.textContent = "";
  offers.handled.add(offer.leg_id);
  await ringer.unlock();
  let reply;
  try {
    reply = offer.kind === "transfer"
      ? await api.transferAction(offer.transfer.id, "accept")
      : await api.accept(offer.call_id);
  } catch (err) {
    offers.handled.delete(offer.leg_id);
    errorEl.textContent = err.status === 409
      ? "Too late: this call is no longer ringing for you."
      : `Could not accept: ${errorText(err)}`;
    return;
  }
  ringer.stop();
  openCall(reply.call_id, offer.caller, offer.kind === "transfer" ? offer.from_agent : null);
  focusOn("call-heading");
  offers.list = offers.list.filter((o) => o.leg_id !== offer.leg_id);
  renderOffers();
  await joinMedia(reply.room, reply.token, reply.url);
  scheduleSync();
}

async function declineOffer(offer, errorEl) {
  errorEl.textContent = "";
  offers.handled.add(offer.leg_id);
  try {
    if (offer.kind === "transfer") await api.transferAction(offer.transfer.id, "decline");
    else await api.decline(offer.call_id);
    announce(offer.kind === "transfer" ? "Transfer declined." : "Call declined.");
  } catch (err) {
    offers.handled.delete(offer.leg_id);
    errorEl.textContent = err.status === 409
      ? "This call is no longer ringing for you."
      : `Could not decline: ${errorText(err)}`;
    return;
  }
  const li = $("offer-list").querySelector(`[data-leg="${CSS.escape(offer.leg_id)}"]`);
  focusOn((li && nextOfferControl(li)) || "offers-heading");
  offers.list = offers.list.filter((o) => o.leg_id !== offer.leg_id);
  renderOffers();
}

/** The Accept button of the offer after ``li`` (or before it): where focus goes when ``li`` goes. */
function nextOfferControl(li) {
  const other = li.nextElementSibling || li.previousElementSibling;
  return other?.querySelector("button.accept") || null;
}

/** Alt+Shift+A, or the "Go to incoming call" link: focus the oldest offer's Accept button.
 * Nothing moves focus by itself when an offer arrives: the agent may be typing a note. */
function goToOffer(event) {
  const accept = $("offer-list").querySelector("button.accept");
  if (event.type === "click") event.preventDefault();
  if (accept) accept.focus();
  else announce("Nothing is ringing for you.");
}

export function bindOffers() {
  $("offer-jump").addEventListener("click", goToOffer);
  document.addEventListener("keydown", (event) => {
    if (event.altKey && event.shiftKey && !event.ctrlKey && !event.metaKey && event.code === "KeyA") {
      event.preventDefault();
      goToOffer(event);
    }
  });
}

/** Every second: how long each offer has been waiting. */
export function tickOffers() {
  const now = Date.now();
  for (const li of $("offer-list").children) {
    const started = Number(li.dataset.startedAt);
    const el = li.querySelector(".wait-time");
    if (el && started) setText(el, duration((now - started) / 1000));
  }
}
