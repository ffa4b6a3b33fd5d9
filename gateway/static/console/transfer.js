// Transfers as the console shows them: the form (A starts one), the progress (A and B), the
// hints and the announcements of how it ended. Which buttons work comes from the server
// (transfer.allowed_actions, transfer.active), not from a copy of its state machine here.

import { api, busy, errorText, me, nameOf, names, session } from "./context.js";
import { summaryBlock, transferNotes } from "./content.js";
import {
  $, E164, announce, clock, describeEvent, focusOn, h, isEnabled, rescueFocus, setEnabled, setText, show, statusLabel,
  transferStateLabel,
} from "./ui.js";

const announced = new Set(); // "<transfer id>|<stage>" this page has announced: each said once

/** The newest transfer of the call this agent takes part in (as A or as B). */
export function latestTransfer(call) {
  const mine = call.transfers.filter((t) => t.source_agent_id === me() || t.target_agent_id === me());
  return mine[mine.length - 1] || null;
}

const targetName = (t) => (t.target_agent_id ? nameOf(t.target_agent_id)
  : t.target_number || (t.target_team ? `team ${t.target_team}` : "the number"));

/** What the agent reads once their part in the call is over. */
export function outcomeText(call) {
  const caller = call.caller || "the caller";
  const t = latestTransfer(call);
  if (call.data?.state === "ended") {
    if (call.data.end_reason === "callback not answered") return "Callback missed — you are available again.";
    const reason = call.data.end_reason ? ` (${call.data.end_reason})` : "";
    if (t && t.source_agent_id === me() && t.state === "completed") {
      return `Transfer complete: ${caller} went to ${targetName(t)}; the call has since ended${reason}.`;
    }
    return `The call with ${caller} has ended${reason}.`;
  }
  if (t && t.target_agent_id === me() && !t.active && t.state !== "completed") {
    return `The transfer from ${nameOf(t.source_agent_id)} ended (${transferStateLabel(t.state).toLowerCase()}`
      + `${t.end_reason ? `: ${t.end_reason}` : ""}); the caller stays with them.`;
  }
  if (t && t.source_agent_id === me()) {
    if (t.state === "completed" || t.state === "conferenced") {
      return `Transfer complete: ${caller} is now with ${targetName(t)}.`;
    }
    if (t.mode === "cold" && t.active) {
      return `Cold transfer of ${caller} to ${targetName(t)} under way; you are free for the next call.`;
    }
  }
  return `You have left the call with ${caller}.`;
}

/** The transfer part of the call panel: the form when A may start one, else the progress. */
export function renderTransferPart(call, isOwner) {
  const t = latestTransfer(call);
  const active = Boolean(t && t.active);
  renderProgress(call, t);
  if (!(isOwner && !active)) rescueFocus("transfer-form", t ? "transfer-progress-heading" : "call-heading");
  show("transfer-form", isOwner && !active);
  setEnabled("transfer-start", isOwner && call.data?.state === "connected" && !active);
}

function renderProgress(call, t) {
  show("transfer-progress", Boolean(t));
  if (!t) return;
  const source = t.source_agent_id === me();
  setText("transfer-progress-heading", source
    ? `Transfer to ${targetName(t)} (${t.mode})`
    : `Transfer from ${nameOf(t.source_agent_id)} (${t.mode})`);
  setText("transfer-state", transferStateLabel(t.state));
  $("transfer-state").dataset.state = t.state;
  const steps = call.timeline.filter((e) => e.transfer_id === t.id);
  const list = $("transfer-steps");
  if (list.childElementCount !== steps.length || list.dataset.transfer !== t.id) {
    list.dataset.transfer = t.id;
    list.replaceChildren(...steps.map((e) => h("li", {},
      h("time", { datetime: e.at }, clock(e.at)), " ", describeEvent(e, names()))));
  }
  // Rebuilt only when it changed (it used to be rebuilt, and re-read, on every sync).
  const summaryBox = $("transfer-summary");
  const shown = `${t.id}|${JSON.stringify(t.summary || null)}`;
  if (summaryBox.dataset.shown !== shown) {
    summaryBox.dataset.shown = shown;
    summaryBox.replaceChildren(
      ...[source ? null : transferNotes(t, nameOf(t.source_agent_id))].filter(Boolean),
      h("h4", {}, "Summary"),
      t.summary ? summaryBlock(t.summary) : h("p", { class: "muted" }, "Preparing the summary…"),
    );
  }

  const allowed = new Set(source ? t.allowed_actions : []);
  for (const [action, button] of Object.entries(actionButtons())) {
    show(button, source && (action !== "queue" || allowed.has("queue")));
    setEnabled(button, allowed.has(action));
    button.dataset.transfer = t.id;
  }
  setText("transfer-hint", hint(call, t, source, allowed));
}

function hint(call, t, source, allowed) {
  const who = targetName(t);
  if (!source) {
    return {
      target_ringing: "Accept to talk to the transferring agent first.",
      target_accepted: `${nameOf(t.source_agent_id)} will connect the caller when ready.`,
      conferenced: `The caller is with you and ${nameOf(t.source_agent_id)}, who will leave after the introduction.`,
      completed: "The call is yours now.",
    }[t.state] || transferStateLabel(t.state);
  }
  const returning = call.timeline.filter((e) => e.kind === "caller_returning" && e.transfer_id === t.id).pop();
  if (returning && returning.detail?.to !== "agent A") {
    return `${transferStateLabel(t.state)}: the caller went back to the queue.`;
  }
  return {
    initiated: `Reaching ${who}… The caller is on hold.`,
    team_busy: t.notice || `No one free in ${t.target_team}.`,
    queued: `The caller waits in ${t.target_team}'s queue, ahead of new callers; you are free for the next call.`,
    consulting: `Reaching ${who}… The caller is on hold.`,
    target_ringing: `Ringing ${who}… The caller is on hold. You can cancel.`,
    target_accepted: allowed.has("complete")
      ? `You and ${who} are talking privately; the caller is on hold. Connect the caller when ready.`
      : `${who} accepted and is joining…`,
    conferenced: `The caller, ${who} and you are together. Introduce the caller, then press Leave.`,
    completed: `Done: the caller is with ${who}.`,
    declined: `${who} declined. The caller is back with you.`,
    no_answer: `${who} did not answer. The caller is back with you.`,
    cancelled: "Transfer cancelled. The caller is back with you.",
    failed: `Transfer failed${t.end_reason ? `: ${t.end_reason}` : ""}. The caller is back with you.`,
    abandoned: "The caller hung up during the transfer.",
  }[t.state] || "";
}

const actionButtons = () => ({
  complete: $("transfer-connect"), queue: $("transfer-queue"), cancel: $("transfer-cancel"), leave: $("transfer-leave"),
});

/**
 * Each change of a transfer's stage is announced once: when B has joined and A should press
 * Connect caller, when the caller is connected, and how it ended. Unchanged stages are silent.
 */
export function announceTransfer(call) {
  const t = latestTransfer(call);
  if (!t) return;
  const source = t.source_agent_id === me();
  const joined = t.allowed_actions.includes("complete");
  const stage = t.active ? `${t.state}${joined ? "+joined" : ""}` : "ended";
  const key = `${t.id}|${stage}`;
  if (announced.has(key)) return;
  announced.add(key);
  if (!t.active) {
    announce(`Transfer ${transferStateLabel(t.state).toLowerCase()}. ${$("transfer-hint").textContent}`,
      t.state !== "completed");
    return;
  }
  const who = targetName(t);
  const from = nameOf(t.source_agent_id);
  const text = source ? {
    target_ringing: `Ringing ${who}.`,
    target_accepted: joined ? `${who} joined — press Connect caller.` : `${who} accepted and is joining.`,
    conferenced: `The caller is connected with ${who} and you. Introduce them, then press Leave.`,
  }[t.state] : {
    target_accepted: `You are talking privately with ${from}; the caller is on hold.`,
    conferenced: `The caller has joined you and ${from}.`,
  }[t.state];
  if (text) announce(text);
}

/** The call is over for this page: its transfer's ending is told by the outcome instead. */
export function transferSettled(call) {
  const t = call && latestTransfer(call);
  if (t) announced.add(`${t.id}|ended`);
}

/** Who A may transfer to: the other agents, the available ones selectable. */
export function renderTransferTargets() {
  const select = $("transfer-agent");
  const previous = select.value;
  const others = session.agents.filter((a) => a.id !== me());
  const options = others.map((a) => h("option", {
    value: a.id, disabled: a.status !== "available",
  }, `${a.name} — ${statusLabel(a.status)}`));
  if (!others.some((a) => a.status === "available")) {
    options.unshift(h("option", { value: "", disabled: true }, "No agent is available"));
  }
  select.replaceChildren(...options);
  const keep = others.find((a) => a.id === previous && a.status === "available");
  const first = others.find((a) => a.status === "available");
  select.value = keep ? keep.id : first ? first.id : "";
}

function onTargetKindChange() {
  const kind = document.querySelector("input[name=target-kind]:checked").value;
  show("target-agent-field", kind === "agent");
  show("target-number-field", kind === "number");
  show("target-team-field", kind === "team");
}

async function onTransferSubmit(event, call, sync, apply) {
  event.preventDefault();
  if (!call || !isEnabled($("transfer-start"))) return;
  const errorEl = $("transfer-error");
  const number = $("transfer-number");
  errorEl.textContent = "";
  number.removeAttribute("aria-invalid");
  const kind = document.querySelector("input[name=target-kind]:checked").value;
  const mode = document.querySelector("input[name=mode]:checked").value;
  const notes = $("transfer-notes").value.trim();
  const body = { call_id: call.id, mode, notes: notes || undefined };
  if (kind === "agent") {
    const agentId = $("transfer-agent").value;
    if (!agentId) {
      errorEl.textContent = "Choose an available agent.";
      $("transfer-agent").focus();
      return;
    }
    body.target_agent_id = agentId;
  } else if (kind === "team") {
    const team = $("transfer-team").value.trim().toLowerCase();
    if (!team) {
      errorEl.textContent = "Enter the team's id, for example billing.";
      $("transfer-team").focus();
      return;
    }
    body.target_team = team;
  } else {
    const value = number.value.replace(/[\s().-]/g, "");
    if (!E164.test(value)) {
      errorEl.textContent = "Enter the number in international format, for example +15551234567.";
      number.setAttribute("aria-invalid", "true");
      number.focus();
      return;
    }
    body.target_number = value;
  }
  await busy($("transfer-start"), async () => {
    let reply;
    try {
      reply = await api.initiateTransfer(body);
      $("transfer-notes").value = "";
      announce(`${mode === "warm" ? "Warm" : "Cold"} transfer started.`);
    } catch (err) {
      errorEl.textContent = `Transfer not started: ${errorText(err)}`;
      return;
    }
    apply(reply.transfer); // the progress is shown (and the form hidden) before focus moves there
    focusOn("transfer-progress-heading");
    sync();
  });
}

/** After each action, focus goes to the next useful control: Leave after Connect caller, the
 * progress after Cancel; after Leave it stays until the call panel closes (then Dismiss). */
const FOCUS_AFTER = { complete: "transfer-leave", cancel: "transfer-progress-heading" };

async function onTransferAction(event, sync, apply) {
  const button = event.currentTarget;
  const action = Object.entries(actionButtons()).find(([, b]) => b === button)[0];
  await busy(button, async () => {
    try {
      const reply = await api.transferAction(button.dataset.transfer, action);
      announce({
        complete: "Connecting the caller…", queue: "Keeping the caller in the team's queue…",
        cancel: "Cancelling the transfer…", leave: "Leaving the call…",
      }[action]);
      apply(reply.transfer);
    } catch (err) {
      setText("transfer-hint", `Could not ${action === "complete" ? "connect" : action}: ${errorText(err)}`);
      return;
    }
    if (FOCUS_AFTER[action]) focusOn(FOCUS_AFTER[action]);
  });
  sync();
}

/** currentCall(): the call on screen (or null); sync(): re-read it from the server;
 * apply(transfer): show a transfer an action returned, at once. */
export function bindTransfer({ currentCall, sync, apply }) {
  for (const radio of document.querySelectorAll("input[name=target-kind]")) radio.addEventListener("change", onTargetKindChange);
  $("transfer-form").addEventListener("submit", (event) => onTransferSubmit(event, currentCall(), sync, apply));
  for (const button of Object.values(actionButtons())) {
    button.addEventListener("click", (event) => onTransferAction(event, sync, apply));
  }
}
