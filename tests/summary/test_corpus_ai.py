"""The AI path over the evaluation corpus, against the sandbox OpenAI double (the real openai client, on
loopback): the prompt carries every fact, the double answers in JSON mode, and validation keeps the facts."""

from __future__ import annotations

import pytest

from gateway.adapters.openai_summarizer import OpenAISummarizer
from gateway.domain import summary as S
from gateway.sandbox.openai_server import FakeOpenAI
from tests.summary.corpus import CORPUS
from tests.summary.evaluate import CHANNELS, console_text, digits, evaluate, found, normalise

FACTS = {"caller_number": "***4321", "minutes_on_call": 4.0, "agent": "Alice"}


@pytest.fixture(scope="module")
def ai_path():
    fake = FakeOpenAI(api_key="sk-corpus").start()
    summarizer = OpenAISummarizer("sk-corpus", "gpt-4o-mini", base_url=fake.url + "/v1")
    answers = {}
    for call in CORPUS:
        transcript, notes = list(call.transcript), list(call.notes)
        messages = S.build_messages(FACTS, transcript, notes)
        raw = summarizer.complete_json(messages, timeout_s=5.0)
        local = S.fallback(FACTS, transcript, notes)
        answers[call.name] = (messages, raw, S.validate(raw, transcript=transcript, local=local))
    yield answers
    fake.stop()


def prompt_text(messages: list) -> str:
    return "\n".join(m["content"] for m in messages)


def test_the_prompt_carries_every_fact_and_no_secret(ai_path):
    for call in CORPUS:
        messages, _, _ = ai_path[call.name]
        text = prompt_text(messages)
        assert "JSON" in text  # or OpenAI refuses JSON mode
        missing = [fact[0] for fact in call.facts if not found(fact, text)]
        assert missing == [], f"{call.name}: the prompt lacks {missing}"
        for secret in call.secrets:
            assert digits(secret) not in digits(text), f"{call.name}: {secret} reached the prompt"


def test_the_double_answers_with_the_keys_the_prompt_asks_for(ai_path):
    for call in CORPUS:
        _, raw, validated = ai_path[call.name]
        assert list(raw) == list(S.FIELDS), call.name
        assert validated is not None and list(validated) == list(S.FIELDS), call.name


def test_validation_keeps_every_fact_the_model_gave(ai_path):
    for call in CORPUS:
        _, raw, validated = ai_path[call.name]
        before = " | ".join([raw["reason"], *raw["key_facts"], *raw["tried"], raw["next_step"]])
        after = normalise(console_text(validated))
        lost = [fact[0] for fact in call.facts if found(fact, before) and not found(fact, after)]
        assert lost == [], f"{call.name}: validation dropped {lost}"


def test_every_channel_of_the_ai_path_keeps_its_budget_and_leaks_nothing(ai_path):
    # Recall of the AI path is the double's, not a model's: `python -m bench summary` prints it; what
    # the gateway guarantees is the budgets, the redaction, and that no reason is a greeting.
    evaluation = evaluate(lambda call: ai_path[call.name][2])
    assert max(evaluation.segments) <= 2 and max(evaluation.whisper_words) <= S.WHISPER_MAX_WORDS
    assert evaluation.leaks == []
    for result in evaluation.results:
        assert not result.summary["reason"].lower().startswith(("hello", "hi ", "hi,")), result.call.name
        assert all(result.outputs[channel] for channel in CHANNELS)


def test_no_instruction_from_the_caller_becomes_the_next_step(ai_path):
    for call in CORPUS:
        step = ai_path[call.name][2]["next_step"].lower()
        for words in call.forbidden_next_step:
            assert words not in step, call.name
