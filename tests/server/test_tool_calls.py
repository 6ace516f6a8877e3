"""OpenAI function calling through a real server and the real `openai` client: forced and required calls whose
arguments validate against the tool's schema (whole and streamed), a tool-message round trip, and bad tools."""

from __future__ import annotations

import functools
import json

import jsonschema
import openai
import pytest
from serverproc import KEYS, MODEL_NAME

from r1stack.config import DEFAULT_MODEL, Settings
from r1stack.engine import store
from r1stack.server.protocol import ChatCompletionRequest
from r1stack.server.tools import conversation, hf_messages, plan_tools, template_takes_tools

pytestmark = pytest.mark.timeout(300)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit", "days"],
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "world_clock",
        "description": "The local time in a time zone.",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "enum": ["UTC", "Asia/Shanghai", "Europe/Paris"]}},
            "required": ["zone"],
        },
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris this week?"}]
FORCE_WEATHER = {"type": "function", "function": {"name": "get_weather"}}


def _schema(tool: dict) -> dict:
    return tool["function"]["parameters"]


@pytest.fixture(scope="module")
def client(server):
    return server.openai(KEYS["alice"])


def test_a_forced_tool_call_has_arguments_that_validate(client):
    r = client.chat.completions.create(
        model=MODEL_NAME, messages=ASK, tools=[WEATHER, CLOCK], tool_choice=FORCE_WEATHER, max_tokens=48
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call")
    assert call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    jsonschema.validate(args, _schema(WEATHER))
    assert r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0


def test_a_forced_tool_call_streams_its_arguments(client):
    stream = client.chat.completions.create(
        model=MODEL_NAME,
        messages=ASK,
        tools=[WEATHER],
        tool_choice=FORCE_WEATHER,
        max_tokens=48,
        stream=True,
        stream_options={"include_usage": True},
    )
    ids, names, pieces, finish, usage = set(), set(), [], None, None
    for chunk in stream:
        usage = chunk.usage or usage
        for c in chunk.choices:
            finish = c.finish_reason or finish
            for tc in c.delta.tool_calls or []:
                assert tc.index == 0
                if tc.id:
                    ids.add(tc.id)
                if tc.function and tc.function.name:
                    names.add(tc.function.name)
                if tc.function and tc.function.arguments:
                    pieces.append(tc.function.arguments)
    assert finish == "tool_calls" and names == {"get_weather"} and len(ids) == 1
    assert len(pieces) > 1, "the arguments should arrive as they are generated, not in one piece"
    jsonschema.validate(json.loads("".join(pieces)), _schema(WEATHER))
    assert usage is not None and usage.completion_tokens > 0


def test_required_picks_one_of_the_offered_tools(client):
    r = client.chat.completions.create(
        model=MODEL_NAME,
        messages=[{"role": "user", "content": "What time is it in Shanghai?"}],
        tools=[WEATHER, CLOCK],
        tool_choice="required",
        max_tokens=48,
    )
    (call,) = r.choices[0].message.tool_calls
    tool = {"get_weather": WEATHER, "world_clock": CLOCK}[call.function.name]
    jsonschema.validate(json.loads(call.function.arguments), _schema(tool))
    assert r.choices[0].finish_reason == "tool_calls"


def test_a_tool_result_goes_back_into_the_prompt_and_is_answered(client, server):
    marker = "Sunny, 23 degrees, light breeze from the Zorblat sea"
    messages = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_weather_1",
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "arguments": '{"city": "Paris", "unit": "celsius", "days": 3}',
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_weather_1", "content": marker},
    ]
    r = client.chat.completions.create(
        model=MODEL_NAME, messages=messages, tools=[WEATHER], tool_choice="none", max_tokens=16, temperature=0
    )
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.choices[0].message.content and not r.choices[0].message.tool_calls
    # The server saw exactly the documented fallback rendering (SmolLM2's template knows no tools): the earlier
    # call as a <tool_call> line and its result in a <tool_response> block, after the tools' description.
    prompt = _rendered(messages, [WEATHER], offer=False)
    assert marker in prompt and "<tool_response>" in prompt
    assert '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"' in prompt
    assert r.usage.prompt_tokens == len(_tokenizer()(prompt, add_special_tokens=False)["input_ids"])
    auto = client.chat.completions.create(model=MODEL_NAME, messages=messages, tools=[WEATHER], max_tokens=1)
    offered = _rendered(messages, [WEATHER], offer=True)
    assert "get_weather: The current weather in a city." in offered
    assert auto.usage.prompt_tokens == len(_tokenizer()(offered, add_special_tokens=False)["input_ids"])


@functools.cache
def _tokenizer():
    from r1stack.engine.loader import load_tokenizer

    return load_tokenizer(store.resolve(DEFAULT_MODEL, Settings().data_dir))


def _rendered(messages: list[dict], tools: list[dict], offer: bool) -> str:
    req = ChatCompletionRequest(model=MODEL_NAME, messages=messages, tools=tools)
    plan = plan_tools(req)
    tok = _tokenizer()
    msgs, kw = conversation(hf_messages(req.messages), plan, offer, template_takes_tools(tok))
    return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, **kw)


def test_without_tools_a_conversation_that_used_them_still_renders(client):
    messages = [
        *ASK,
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "rain"},
    ]
    r = client.chat.completions.create(model=MODEL_NAME, messages=messages, max_tokens=4)
    assert r.choices[0].message.content


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice",
            "nope",
        ),
        ({"tool_choice": "required"}, "tool_choice", "needs tools"),
        ({"tools": [WEATHER, WEATHER]}, "tools", "unique"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]},
            "tools[0].function.parameters",
            "type object",
        ),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "parameters": {
                                "type": "object",
                                "properties": {"x": {"type": "object"}},
                                "required": ["x"],
                            },
                        },
                    }
                ],
                "tool_choice": {"type": "function", "function": {"name": "f"}},
            },
            "tool_choice",
            "cannot be enforced",
        ),
        ({"tools": [WEATHER], "n": 2}, "n", "n=1"),
    ],
)
def test_bad_tools_are_a_400_with_an_openai_body(client, body, param, words):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL_NAME, messages=ASK, max_tokens=4, **body)
    error = e.value.body
    assert error["param"] == param and words in error["message"], error
    assert error["type"] == "invalid_request_error"


def test_a_bad_tool_choice_value_is_a_400(server):
    import httpx

    r = httpx.post(
        server.api + "/chat/completions",
        headers={"Authorization": f"Bearer {KEYS['alice']}"},
        json={"model": MODEL_NAME, "messages": ASK, "tools": [WEATHER], "tool_choice": "sometimes"},
        timeout=60,
    )
    assert r.status_code == 400 and "tool_choice" in r.text
