"""OpenAI structured output (`response_format` json_schema) through a real server and the real `openai` client:
the answer is constrained while it is generated, so it always parses and validates, whole and streamed."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest
from serverproc import KEYS, MODEL_NAME

pytestmark = pytest.mark.timeout(300)

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "role": {"type": "string", "enum": ["doctor", "nurse", "clerk"]},
    },
    "required": ["name", "age", "role"],
}
FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
ASK = [{"role": "user", "content": "Describe one hospital employee as JSON."}]


@pytest.mark.parametrize("seed", [0, 1])
def test_answers_validate_against_the_schema(server, seed):
    client = server.openai(KEYS["alice"])
    r = client.chat.completions.create(
        model=MODEL_NAME, messages=ASK, response_format=FORMAT, temperature=1.0, seed=seed, max_tokens=60
    )
    jsonschema.validate(json.loads(r.choices[0].message.content), PERSON)


def test_streamed_answer_validates(server):
    client = server.openai(KEYS["alice"])
    stream = client.chat.completions.create(
        model=MODEL_NAME,
        messages=ASK,
        response_format=FORMAT,
        temperature=0.7,
        seed=3,
        max_tokens=60,
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    jsonschema.validate(json.loads(text), PERSON)


@pytest.mark.parametrize(
    "fmt,message",
    [({"type": "json_object"}, "needs a schema"),
     ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {
         "when": {"type": "string", "format": "date-time"}}, "required": ["when"]}}}, "format")],
)  # fmt: skip
def test_unsupported_formats_are_a_clear_400(server, fmt, message):
    client = server.openai(KEYS["alice"])
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL_NAME, messages=ASK, response_format=fmt, max_tokens=20)
    assert message in e.value.body["message"]
