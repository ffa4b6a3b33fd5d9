"""The local fallback over the whole evaluation corpus: what B learns on every channel."""

from __future__ import annotations

import pytest

from gateway.domain import summary as S
from tests.summary.corpus import CORPUS
from tests.summary.evaluate import CHANNELS, evaluate, fallback_summary

RECALL_GOAL = 0.90


@pytest.fixture(scope="module")
def evaluation():
    return evaluate()


def test_the_corpus_covers_every_case_the_issue_lists():
    covered = {case for call in CORPUS for case in call.covers}
    assert len(CORPUS) >= 25
    for case in (
        "billing dispute",
        "refund",
        "technical support with things already tried",
        "cancellation",
        "address change",
        "angry caller",
        "card number read out",
        "ID number read out",
        "notes but no transcript",
        "transcript with no notes",
        "30-minute call",
        "small talk opening",
        "caller answers one word at a time",
    ):
        assert case in covered, case
    long_call = next(c for c in CORPUS if "30-minute call" in c.covers)
    assert sum(len(text.split()) for _, text in long_call.transcript) >= 4200  # 30 min at ~150 words a minute


@pytest.mark.parametrize("channel", CHANNELS)
def test_fact_recall_per_channel(evaluation, channel):
    assert evaluation.recall(channel) >= RECALL_GOAL, evaluation.report()


def test_every_sms_fits_two_segments(evaluation):
    assert max(evaluation.segments) <= 2, evaluation.report()
    for result in evaluation.results:
        assert result.outputs["sms"].endswith(" https://gateway.example.com/t/xfer_3f9a1c2b7d4e6a80")


def test_every_whisper_fits_about_25_seconds(evaluation):
    assert max(evaluation.whisper_words) <= S.WHISPER_MAX_WORDS, evaluation.report()


def test_no_card_or_id_number_reaches_any_channel(evaluation):
    assert sum(len(c.secrets) for c in CORPUS) >= 4
    assert evaluation.leaks == []


def test_no_reason_is_a_greeting_and_no_next_step_obeys_the_caller(evaluation):
    for result in evaluation.results:
        reason = result.summary["reason"].lower()
        assert not reason.startswith(("hello", "hi ", "hi,", "good morning", "oh hello")), result.call.name
        for words in result.call.forbidden_next_step:
            assert words not in result.summary["next_step"].lower(), result.call.name
            assert words not in result.outputs["sms"].lower() and words not in result.outputs["whisper"].lower()


def test_the_fallback_is_deterministic():
    for call in CORPUS[:5]:
        assert fallback_summary(call) == fallback_summary(call)
