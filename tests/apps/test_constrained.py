"""The schema-constrained logits processor: the automaton accepts exactly the schema's language, and every walk
through the real tokenizer's vocabulary ends in JSON that validates, within max_tokens."""

from __future__ import annotations

import json
import random

import pytest
import torch

from r1stack.apps.clinical.assistant import (
    DIAGNOSIS_MAX_TOKENS,
    TRIAGE_MAX_TOKENS,
    TRIAGE_SCHEMA,
    diagnosis_schema,
    parse_triage,
)
from r1stack.apps.risk.answer import MAX_TOKENS, RISK_SCHEMA, parse_answer
from r1stack.engine.constrained import (
    compile_schema,
    grammar_for,
    json_schema_processor,
    schema_error,
    strict_schema,
)
from r1stack.errors import UserError


@pytest.fixture(scope="module")
def tokenizer(data_dir):
    from r1stack.engine.loader import load_tokenizer
    from r1stack.engine.store import resolve

    return load_tokenizer(resolve("smollm2-135m-instruct", data_dir))


@pytest.mark.parametrize(
    "text",
    [
        '{"risk_level": "low", "score": 0, "reasons": []}',
        '{"risk_level": "critical", "score": 100, "reasons": ["a \\"quoted\\" word", "b", "夜间交易"]}',
        '{"risk_level": "medium", "score": 42, "reasons": ["x"]}',
    ],
)
def test_automaton_accepts_valid_answers(text):
    dfa, start = compile_schema(RISK_SCHEMA)
    assert dfa.walk(start, text.encode()) == dfa.accept


@pytest.mark.parametrize(
    "text",
    [
        '{"risk_level": "lo", "score": 0, "reasons": []}',  # not an enum value
        '{"risk_level": "low", "score": 101, "reasons": []}',  # out of range
        '{"risk_level": "low", "score": 07, "reasons": []}',  # leading zero
        '{"risk_level": "low", "score": -1, "reasons": []}',
        '{"risk_level": "low", "score": 5, "reasons": ["a", "b", "c", "d"]}',  # over maxItems
        '{"risk_level": "low", "score": 5, "reasons": ["a\nb"]}',  # raw control character
        '{"score": 5, "risk_level": "low", "reasons": []}',  # wrong order
    ],
)
def test_automaton_rejects_invalid_answers(text):
    dfa, start = compile_schema(RISK_SCHEMA)
    assert dfa.walk(start, text.encode()) != dfa.accept


@pytest.mark.parametrize(
    "schema", [RISK_SCHEMA, TRIAGE_SCHEMA, diagnosis_schema(3)], ids=["risk", "triage", "dx"]
)
def test_the_strict_schema_an_upstream_gets_is_the_same_language(schema):
    # What goes out as response_format compiles back to the very automaton the native engine enforces.
    assert compile_schema(strict_schema(schema))[0].edges == compile_schema(schema)[0].edges
    assert strict_schema(schema)["required"] == list(schema["properties"])


@pytest.mark.parametrize(
    "text,why",
    [
        ('{"risk_level": "lo", "score": 0, "reasons": []}', "risk_level: 'lo' is not one of"),
        ('{"risk_level": "low", "score": 101, "reasons": []}', "score: 101 is greater than the maximum"),
        ('{"risk_level": "low", "score": 5, "reasons": ["a", "b", "c", "d"]}', "reasons:"),
        ('{"risk_level": "low", "score": 5}', "'reasons' is a required property"),
        ('{"risk_level": "low", "score": 5, "reasons": [], "x": 1}', "Additional properties"),
        ("The risk is low.", "not JSON"),
    ],
)
def test_answers_from_elsewhere_are_validated_with_a_reason(text, why):
    assert why in schema_error(RISK_SCHEMA, text)
    # Key order is the automaton's concern, not the schema's: an upstream may write them in any order.
    assert schema_error(RISK_SCHEMA, '{"score": 5, "risk_level": "low", "reasons": []}') is None


def _walk(grammar, rng: random.Random, max_tokens: int) -> list[int]:
    """A random path through the allowed tokens, as an adversarial sampler would take it."""
    state, out = grammar.start, []
    for i in range(max_tokens):
        ids = grammar.allowed(state, max_tokens - i - 1)
        assert len(ids) > 0, "the processor left no token to choose"
        # Bias towards long free-text tokens now and then, to push against the budget.
        tid = int(ids[rng.randrange(len(ids))]) if rng.random() < 0.9 else int(ids[-1])
        if tid in grammar.eos:
            return out
        out.append(tid)
        state = grammar.advance(state, tid)
        assert state >= 0
    return out


def test_a_thousand_random_walks_all_validate(tokenizer):
    grammar = grammar_for(RISK_SCHEMA, tokenizer, [tokenizer.eos_token_id])
    rng = random.Random(1234)
    for _ in range(1000):
        budget = rng.choice([MAX_TOKENS, rng.randint(grammar.min_tokens, MAX_TOKENS)])
        out = _walk(grammar, rng, budget)
        assert len(out) <= budget
        parse_answer(tokenizer.decode(out))  # raises if it does not validate


@pytest.mark.parametrize("schema_name", ["triage", "diagnosis"])
def test_other_app_schemas_validate(tokenizer, schema_name):
    schema = TRIAGE_SCHEMA if schema_name == "triage" else diagnosis_schema(3)
    grammar = grammar_for(schema, tokenizer, [tokenizer.eos_token_id])
    rng = random.Random(7)
    for _ in range(200):
        text = tokenizer.decode(
            _walk(grammar, rng, DIAGNOSIS_MAX_TOKENS if schema_name == "diagnosis" else TRIAGE_MAX_TOKENS)
        )
        if schema_name == "triage":
            parse_triage(text)
        else:
            data = json.loads(text)
            assert set(data) == {"differential", "next_steps", "citations"}
            assert all(1 <= c <= 3 for c in data["citations"])


def test_processor_masks_logits_and_forces_an_end(tokenizer):
    eos = tokenizer.eos_token_id
    proc = json_schema_processor(RISK_SCHEMA, tokenizer, [eos], MAX_TOKENS)
    gen = torch.Generator().manual_seed(0)
    out: list[int] = []
    while True:
        logits = proc([1, 2, 3], out, torch.randn(len(tokenizer), generator=gen) * 5)
        allowed = torch.isfinite(logits)
        assert allowed.any()
        tid = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))
        if tid == eos:
            break
        out.append(tid)
        assert len(out) <= MAX_TOKENS
    answer = parse_answer(tokenizer.decode(out))
    assert answer.risk_level in ("low", "medium", "high", "critical")


def test_too_few_tokens_is_a_clear_error(tokenizer):
    with pytest.raises(UserError, match="max_tokens"):
        json_schema_processor(RISK_SCHEMA, tokenizer, [tokenizer.eos_token_id], 10)
