"""Measuring a summary by what B gets: fact recall per channel, SMS segments, whisper length, leaks.

Shared by the corpus tests and ``python -m bench summary``. The channels are rendered by the gateway's
own code (the SMS body, the whisper TwiML, the console's structured summary); the SMS is counted by
the Twilio simulator's segment counter, not by the code under test.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import twiml
from gateway.domain import summary as S
from gateway.sandbox.twilio_sim import sms_segments
from tests.summary.corpus import CORPUS, CorpusCall

AGENT = "Alice"
TRANSFER_ID = "xfer_3f9a1c2b7d4e6a80"
ORIGIN = "https://gateway.example.com"
LINK = S.transfer_link(ORIGIN, TRANSFER_ID)
CHANNELS = ("sms", "whisper", "console")


def normalise(text: str) -> str:
    """Lower case, one space; digits read one by one ("5 5 1 2 0") joined back, so a fact is found
    in a whisper that spells it out."""
    text = " ".join(str(text).split()).lower()
    return re.sub(r"(?<=\d) (?=\d(?:\s|$|\d))", "", text)


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def whisper_document(summary: dict, agent: str = AGENT) -> str:
    return twiml.whisper_offer(announcement=S.whisper_parts(summary, agent), gather_url="https://gw/g")


def whisper_text(document: str) -> str:
    """What B hears before the key-press prompt: the text of every <Say> (SSML children included)."""
    root = ET.fromstring(document)
    says = [" ".join("".join(say.itertext()).split()) for say in root.iter("Say")]
    return " ".join(s for s in says if not s.startswith("Press ") and not s.startswith("No response"))


def spoken_words(text: str) -> int:
    """Words as Polly says them: an id read digit by digit costs one word a digit."""
    count = 0
    for word in text.split():
        run = digits(word)
        count += len(run) if len(run) >= 3 and not re.search(r"[.,]\d", word) else 1
    return count


def console_text(summary: dict) -> str:
    parts = [summary.get("reason", ""), summary.get("mood", ""), summary.get("next_step", "")]
    parts += list(summary.get("key_facts") or []) + list(summary.get("tried") or [])
    return " | ".join(str(p) for p in parts)


def channels(summary: dict) -> dict:
    document = whisper_document(summary)
    return {
        "sms": S.sms_body(summary, AGENT, LINK),
        "whisper": whisper_text(document),
        "console": console_text(summary),
        "_whisper_document": document,
    }


def found(fact: tuple, text: str) -> bool:
    haystack = normalise(text)
    return any(normalise(spelling) in haystack for spelling in fact)


@dataclass
class CallResult:
    call: CorpusCall
    summary: dict
    outputs: dict
    missed: dict = field(default_factory=dict)  # channel -> facts not found
    segments: int = 0
    whisper_words: int = 0
    leaks: list = field(default_factory=list)


@dataclass
class Evaluation:
    results: list

    def recall(self, channel: str) -> float:
        total = sum(len(r.call.facts) for r in self.results)
        missed = sum(len(r.missed[channel]) for r in self.results)
        return (total - missed) / total

    @property
    def segments(self) -> list:
        return [r.segments for r in self.results]

    @property
    def whisper_words(self) -> list:
        return [r.whisper_words for r in self.results]

    @property
    def leaks(self) -> list:
        return [(r.call.name, leak) for r in self.results for leak in r.leaks]

    def report(self) -> str:
        lines = [f"recall {c}: {self.recall(c):.1%}" for c in CHANNELS]
        lines.append(f"SMS segments: max {max(self.segments)}, per call {self.segments}")
        lines.append(f"whisper words: max {max(self.whisper_words)}, per call {self.whisper_words}")
        lines.append(f"leaks: {self.leaks or 'none'}")
        for r in self.results:
            misses = {c: [f[0] for f in m] for c, m in r.missed.items() if m}
            if misses:
                lines.append(f"  {r.call.name}: missed {misses}")
        return "\n".join(lines)


def evaluate_call(call: CorpusCall, summary: dict) -> CallResult:
    outputs = channels(summary)
    result = CallResult(call, summary, outputs)
    for channel in CHANNELS:
        result.missed[channel] = [f for f in call.facts if not found(f, outputs[channel])]
    result.segments = sms_segments(outputs["sms"])
    result.whisper_words = spoken_words(outputs["whisper"])
    everything = digits(" ".join([outputs["sms"], outputs["_whisper_document"], outputs["console"]]))
    result.leaks = [s for s in call.secrets if digits(s) in everything]
    return result


FALLBACK_FACTS = {"caller_number": "***4321", "minutes_on_call": 4.0, "agent": AGENT}


def fallback_summary(call: CorpusCall) -> dict:
    return S.fallback(FALLBACK_FACTS, list(call.transcript), list(call.notes))


def evaluate(summarise=fallback_summary, corpus=CORPUS) -> Evaluation:
    return Evaluation([evaluate_call(call, summarise(call)) for call in corpus])


if __name__ == "__main__":
    print(evaluate().report())
