"""``python -m bench summary``: what B learns from a transfer summary, measured on the evaluation corpus.

Prints fact recall per channel (SMS, whisper, console) for the local fallback and for the AI path
against the sandbox OpenAI double, the SMS segment counts, the whisper lengths, and the time the
fallback takes on the corpus's 30-minute call (goal: under 5 ms). Needs no gateway, no database.
"""

from __future__ import annotations

import statistics
import time


def _line(label: str, evaluation, channels) -> str:
    recall = "  ".join(f"{c} {evaluation.recall(c):6.1%}" for c in channels)
    return f"{label:<28} {recall}"


def main() -> int:
    from gateway.adapters.openai_summarizer import OpenAISummarizer
    from gateway.domain import summary as S
    from gateway.sandbox.openai_server import FakeOpenAI
    from tests.summary.corpus import CORPUS
    from tests.summary.evaluate import CHANNELS, FALLBACK_FACTS, evaluate, fallback_summary

    fallback = evaluate()
    fake = FakeOpenAI(api_key="sk-bench").start()
    try:
        summarizer = OpenAISummarizer("sk-bench", "gpt-4o-mini", base_url=fake.url + "/v1")

        def ai(call):
            transcript, notes = list(call.transcript), list(call.notes)
            raw = summarizer.complete_json(S.build_messages(FALLBACK_FACTS, transcript, notes), timeout_s=5.0)
            local = S.fallback(FALLBACK_FACTS, transcript, notes)
            return S.validate(raw, transcript=transcript, local=local)

        ai_path = evaluate(ai)
    finally:
        fake.stop()

    long_call = next(c for c in CORPUS if "30-minute call" in c.covers)
    timings = []
    for _ in range(30):
        started = time.perf_counter()
        fallback_summary(long_call)
        timings.append((time.perf_counter() - started) * 1000)
    words = sum(len(text.split()) for _, text in long_call.transcript)

    print(f"Summary quality on the evaluation corpus ({len(CORPUS)} calls, {sum(len(c.facts) for c in CORPUS)} facts)")
    print("fact recall per channel:")
    print(_line("  local fallback", fallback, CHANNELS))
    print(_line("  AI path (sandbox double)", ai_path, CHANNELS))
    for label, evaluation in (("fallback", fallback), ("AI path", ai_path)):
        segments = evaluation.segments
        print(
            f"SMS segments ({label}): max {max(segments)}, "
            + ", ".join(f"{n} x {k}" for k, n in sorted({s: segments.count(s) for s in segments}.items()))
        )
        w = evaluation.whisper_words
        print(
            f"whisper spoken words ({label}): median {statistics.median(w):.0f}, max {max(w)} "
            f"(~{max(w) * 0.35:.0f} s at 0.35 s a word; budget {S.WHISPER_MAX_WORDS})"
        )
        print(f"card or ID numbers leaked ({label}): {len(evaluation.leaks)}")
    print(
        f"fallback on the 30-minute call ({words} words, {len(long_call.transcript)} lines): "
        f"median {statistics.median(timings):.2f} ms, best {min(timings):.2f} ms (goal < 5 ms)"
    )
    misses = [line for line in fallback.report().splitlines() if line.startswith("  ")]
    if misses:
        print("fallback misses:")
        print("\n".join(misses))
    return 0
