"""The function-calling pieces without a server: reading <tool_call> blocks (whole and while streaming), the
forced-call argument schemas (every JSON they allow validates against the tool's own schema, and the engine's
automaton compiles them), the prompt conversion, and the `web_search` tool's query fallback."""

from __future__ import annotations

import itertools
import json

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from r1stack.engine.constrained import compile_schema
from r1stack.server.protocol import ChatCompletionRequest
from r1stack.server.tools import (
    TOOL_PROMPT,
    CallHolder,
    Tool,
    ToolPlan,
    argument_schema,
    conversation,
    hf_messages,
    parse_calls,
    plan_tools,
)
from r1stack.websearch.context import WEB_SEARCH_TOOL, tool_query

PLAN = ToolPlan(
    [Tool("lookup", "", {"type": "object", "properties": {}}), Tool("web_search", "", {})], "auto"
)


def test_calls_are_taken_out_of_the_text_and_the_rest_is_kept():
    text = 'Let me check.\n<tool_call>{"name": "lookup", "arguments": {"id": 7}}</tool_call>\nDone.'
    content, calls = parse_calls(text, PLAN)
    assert calls == [("lookup", '{"id": 7}')]
    assert content == "Let me check.\n\nDone."


def test_blocks_that_are_no_calls_stay_in_the_text():
    for block in (
        "<tool_call>not json</tool_call>",
        '<tool_call>{"name": "unknown", "arguments": {}}</tool_call>',
        '<tool_call>{"name": "lookup", "arguments": [1]}</tool_call>',
    ):
        content, calls = parse_calls(block, PLAN)
        assert calls == [] and content == block


def test_an_unclosed_last_call_and_string_arguments_are_read():
    text = '<tool_call>{"name": "lookup", "arguments": "{\\"q\\": \\"x\\"}"}'
    assert parse_calls(text, PLAN) == ("", [("lookup", '{"q": "x"}')])


def test_parallel_calls_and_parallel_tool_calls_false():
    text = "".join(
        f'<tool_call>{{"name": "lookup", "arguments": {{"n": {i}}}}}</tool_call>' for i in range(3)
    )
    assert len(parse_calls(text, PLAN)[1]) == 3
    single = ToolPlan(PLAN.tools, "auto", parallel=False)
    assert parse_calls(text, single)[1] == [("lookup", '{"n": 0}')]


@given(st.text(alphabet="ab<>_tolc/ ", max_size=40), st.lists(st.integers(1, 12), max_size=8))
def test_the_holder_passes_text_until_a_call_may_begin(text, cuts):
    # However the text is cut into pieces, what was let through plus what was held is the text, and nothing
    # let through is part of "<tool_call>".
    text = text + '<tool_call>{"name": "lookup"}</tool_call> tail'
    holder, shown, at = CallHolder(), "", 0
    for n in itertools.chain(cuts, [len(text)]):
        shown += holder.feed(text[at : at + n])
        at += n
    assert shown + holder.held == text
    assert holder.held.startswith("<tool_call>") and "<tool_call>" not in shown


def test_the_holder_releases_a_tail_that_did_not_become_a_call():
    holder = CallHolder()
    assert holder.feed("a <tool") == "a "
    assert holder.feed("box") == "<toolbox"


SCHEMAS = [
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["c", "f"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
            "score": {"type": "number", "minimum": 0.5, "maximum": 3.5},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            "note": {"type": "object"},
        },
        "required": ["city", "unit", "days", "score", "tags"],
    },
    {"type": "object", "properties": {"n": {"type": "integer"}, "m": {"type": "integer", "minimum": -5}}},
    {"type": "object", "properties": {"k": {"type": "integer", "maximum": 3}}, "required": ["k"]},
]


def _instances(spec: dict):
    if "enum" in spec:
        return list(spec["enum"])
    kind = spec["type"]
    if kind == "string":
        return ["", "Paris", 'a "quoted" \\ word']
    if kind == "integer":
        return [spec["minimum"], spec["maximum"]]
    return [[], _instances(spec["items"])[: spec["maxItems"]]]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_forced_argument_schemas_allow_only_valid_arguments(schema):
    constraint = argument_schema(Tool("t", "", schema))
    dfa, start = compile_schema(constraint)
    names = list(constraint["properties"])
    assert set(schema.get("required", [])) <= set(names)
    for values in itertools.product(*(_instances(constraint["properties"][n]) for n in names)):
        args = dict(zip(names, values, strict=True))
        jsonschema.validate(args, schema)
        # The engine writes `{"a": 1, "b": [2, 3]}`; its automaton must accept exactly that.
        text = (
            "{"
            + ", ".join(f"{json.dumps(n)}: {json.dumps(v, separators=(', ', ': '))}" for n, v in args.items())
            + "}"
        )
        assert dfa.walk(start, text.encode()) == dfa.accept, text


def test_arguments_a_forced_call_cannot_enforce_are_refused():
    from r1stack.errors import UserError

    for spec in (
        {"type": "object"},
        {"type": "boolean"},
        {"type": "string", "pattern": "^a"},
        {"type": "integer", "minimum": 0, "maximum": 10**6},
    ):
        with pytest.raises(UserError, match="cannot be enforced"):
            argument_schema(Tool("t", "", {"type": "object", "properties": {"x": spec}, "required": ["x"]}))
    assert argument_schema(Tool("t", "", {"type": "object", "properties": {}})) is None


def test_web_search_is_the_stacks_own_definition():
    req = ChatCompletionRequest(
        messages=[{"role": "user", "content": "hi"}],
        tools=[{"type": "function", "function": {"name": "web_search", "parameters": {"type": "object"}}}],
    )
    (tool,) = plan_tools(req).tools
    assert tool.parameters == WEB_SEARCH_TOOL["function"]["parameters"]
    assert argument_schema(tool) == {"type": "object", "properties": {"query": {"type": "string"}}}


def test_the_fallback_conversation_for_templates_without_tools():
    req = ChatCompletionRequest(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "tool_calls": [{"id": "c1", "function": {"name": "lookup", "arguments": '{"q": 1}'}}],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ],
        tools=[{"type": "function", "function": {"name": "lookup", "description": "Looks up."}}],
    )
    plan = plan_tools(req)
    msgs, kw = conversation(hf_messages(req.messages), plan, True, native=False)
    assert kw == {}
    assert msgs[0]["role"] == "system" and msgs[0]["content"].startswith("Be brief.\n\n")
    assert TOOL_PROMPT.splitlines()[0] in msgs[0]["content"] and "- lookup: Looks up." in msgs[0]["content"]
    assert msgs[2] == {
        "role": "assistant",
        "content": '<tool_call>{"name": "lookup", "arguments": {"q": 1}}</tool_call>',
    }
    assert msgs[3] == {"role": "user", "content": "<tool_response>\nsunny\n</tool_response>"}
    native, kw = conversation(hf_messages(req.messages), plan, True, native=True)
    assert kw["tools"][0]["function"]["name"] == "lookup"
    assert native[2]["tool_calls"][0]["function"]["arguments"] == {"q": 1}  # objects, as templates expect


def test_the_web_search_query_falls_back_to_the_question():
    assert tool_query('{"query": " kv cache "}', "ignored") == "kv cache"
    assert tool_query('{"query": ""}', "What is new?") == "What is new?"
    assert tool_query("{}", "What is new?") == "What is new?"
    assert tool_query('{"query": 5}', "What is new?") == ""  # a wrong type is the model's error to see
    assert tool_query("not json", "q") == ""
