"""OpenAI function calling at the edge: checking `tools`/`tool_choice`, writing the tools into the prompt, reading
tool calls back out of the model's text, and the argument schema a forced call is generated under."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

from r1stack.errors import UserError
from r1stack.server.protocol import ChatCompletionRequest
from r1stack.websearch.context import WEB_SEARCH_TOOL

WEB_SEARCH = WEB_SEARCH_TOOL["function"]["name"]
OPEN, CLOSE = "<tool_call>", "</tool_call>"

# The fallback for chat templates that know nothing of tools (SmolLM2's, for one): the tools and the call
# format go into the system prompt, the format Hermes and Qwen templates use natively.
TOOL_PROMPT = """You can call these tools. Each one is given as its name, what it does, and a JSON schema of its arguments:

{tools}

To call a tool, write one line per call, exactly like this:
<tool_call>{{"name": "<tool name>", "arguments": {{<the arguments as a JSON object>}}}}</tool_call>
The results come back in <tool_response> blocks. If no tool is needed, answer the user directly."""


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]

    def openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


@dataclass
class ToolPlan:
    """What a request's tools and tool_choice mean: `choice` is "none", "auto", "required" or "named"."""

    tools: list[Tool]
    choice: str
    forced: str | None = None  # the tool a named tool_choice names
    parallel: bool = True

    def tool(self, name: str) -> Tool | None:
        return next((t for t in self.tools if t.name == name), None)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tools]


def plan_tools(req: ChatCompletionRequest) -> ToolPlan | None:
    """The request's tools checked (bad ones are a 400 naming the field); None when it offers none."""
    choice = req.tool_choice
    if not req.tools:
        if choice is None or choice == "none":
            return None
        raise UserError(
            "tool_choice needs tools; offer the functions in `tools` or drop tool_choice", param="tool_choice"
        )
    tools: list[Tool] = []
    for i, t in enumerate(req.tools):
        f = t.function
        if any(x.name == f.name for x in tools):
            raise UserError(
                f"tools holds two functions named {f.name!r}; names must be unique", param="tools"
            )
        if f.name == WEB_SEARCH:
            # The stack runs this one itself, so the model sees the stack's own definition of it.
            w = WEB_SEARCH_TOOL["function"]
            tools.append(Tool(w["name"], w["description"], copy.deepcopy(w["parameters"])))
            continue
        params = f.parameters if f.parameters is not None else {"type": "object", "properties": {}}
        problem = _schema_problem(params)
        if problem:
            raise UserError(
                f"tools[{i}].function.parameters {problem}", param=f"tools[{i}].function.parameters"
            )
        tools.append(Tool(f.name, f.description or "", params))
    if req.n > 1:
        raise UserError("tools work with n=1 only; send one request per choice", param="n")
    plan = ToolPlan(tools, "auto", parallel=req.parallel_tool_calls is not False)
    if isinstance(choice, str):
        plan.choice = choice
    elif choice is not None:
        name = choice.function.name
        if plan.tool(name) is None:
            raise UserError(
                f"tool_choice names the function {name!r}, which is not in tools (offered: {', '.join(plan.names)})",
                param="tool_choice",
            )
        plan.choice, plan.forced = "named", name
    if plan.choice != "none":
        for t in plan.tools:
            if plan.choice == "required" or t.name == plan.forced:
                argument_schema(t)  # a forced call whose arguments cannot be enforced is a 400 now, not later
    return plan


def _schema_problem(params: dict[str, Any]) -> str | None:
    """What makes a tool's parameters unusable as an arguments schema, or None."""
    props = params.get("properties", {})
    if params.get("type", "object") != "object" or not isinstance(props, dict):
        return "must be a JSON schema of type object with properties"
    if not all(isinstance(v, dict) for v in props.values()):
        return "must describe each property with a JSON schema object"
    required = params.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        return "has a `required` that is not a list of property names"
    missing = [r for r in required if r not in props]
    if missing:
        return f"requires {missing[0]!r}, which is not among its properties"
    return None


def template_takes_tools(tokenizer) -> bool:
    """Whether the model's chat template renders a `tools` list itself (as transformers passes it)."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("tool_use") or template.get("default")
    return isinstance(template, str) and "tools" in template


def hf_messages(messages: list) -> list[dict[str, Any]]:
    """Request messages as transformers' chat templates take them (tool call arguments as objects)."""
    out = []
    for m in messages:
        d: dict[str, Any] = {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
        if m.name:
            d["name"] = m.name
        if m.tool_calls:
            d["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.function.name, "arguments": _loads(c.function.arguments)},
                }
                for c in m.tool_calls
            ]
        if m.tool_call_id:
            d["tool_call_id"] = m.tool_call_id
        out.append(d)
    return out


def _loads(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments  # a client's own history; the template shows it as it is


def conversation(
    messages: list[dict[str, Any]], plan: ToolPlan, offer: bool, native: bool
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(messages, chat-template kwargs) for one generation. `offer`: the tools are described to the model.

    A template that takes tools gets them as `tools=`; any other gets TOOL_PROMPT in its system message, earlier
    calls as <tool_call> lines and tool results as user turns in <tool_response> blocks."""
    if native:
        return messages, ({"tools": [t.openai() for t in plan.tools]} if offer else {})
    out = [_plain(m) for m in messages]
    if offer:
        described = "\n\n".join(
            f"- {t.name}: {t.description}\n  arguments: {json.dumps(t.parameters, ensure_ascii=False)}"
            for t in plan.tools
        )
        text = TOOL_PROMPT.format(tools=described)
        if out and out[0]["role"] == "system":
            out[0] = {**out[0], "content": f"{out[0]['content']}\n\n{text}".strip()}
        else:
            out.insert(0, {"role": "system", "content": text})
    return out, {}


def _plain(m: dict[str, Any]) -> dict[str, Any]:
    if m["role"] == "tool":
        name = f' name="{m["name"]}"' if m.get("name") else ""
        return {
            "role": "user",
            "content": f"<tool_response{name}>\n{m.get('content') or ''}\n</tool_response>",
        }
    if m.get("tool_calls"):
        calls = [
            f"{OPEN}{json.dumps({'name': c['function']['name'], 'arguments': c['function']['arguments']}, ensure_ascii=False)}{CLOSE}"
            for c in m["tool_calls"]
        ]
        content = "\n".join(([m["content"]] if m.get("content") else []) + calls)
        return {"role": m["role"], "content": content}
    return {k: v for k, v in m.items() if k in ("role", "content", "name")}


# --- reading calls back -----------------------------------------------------------------------------------------

_BLOCK = re.compile(re.escape(OPEN) + r"(.*?)(?:" + re.escape(CLOSE) + r"|\Z)", re.S)


def parse_calls(text: str, plan: ToolPlan) -> tuple[str, list[tuple[str, str]]]:
    """(the text left once the calls are taken out, [(name, arguments JSON)]) from the model's output. A block
    that does not parse or names a tool not offered stays in the text, so nothing the model wrote is lost."""
    calls: list[tuple[str, str]] = []
    kept: list[str] = []
    last = 0
    for m in _BLOCK.finditer(text):
        call = _call(m.group(1), plan)
        if call is None:
            continue
        kept.append(text[last : m.start()])
        last = m.end()
        calls.append(call)
    kept.append(text[last:])
    if calls and not plan.parallel:
        calls = calls[:1]
    return "".join(kept).strip(), calls


def _call(body: str, plan: ToolPlan) -> tuple[str, str] | None:
    try:
        data = json.loads(body.strip())
    except ValueError:
        return None
    if not isinstance(data, dict) or plan.tool(str(data.get("name"))) is None:
        return None
    args = data.get("arguments", data.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    return data["name"], json.dumps(args, ensure_ascii=False)


class CallHolder:
    """Streams content until a tool call may be starting, then holds the rest for parse_calls at the end."""

    def __init__(self) -> None:
        self.held = ""

    def feed(self, text: str) -> str:
        self.held += text
        at = self.held.find(OPEN)
        if at < 0:
            # Keep back a tail that could still grow into "<tool_call>".
            at = len(self.held)
            for k in range(min(len(OPEN) - 1, len(self.held)), 0, -1):
                if OPEN.startswith(self.held[-k:]):
                    at = len(self.held) - k
                    break
        out, self.held = self.held[:at], self.held[at:]
        return out


# --- forced calls -----------------------------------------------------------------------------------------------

# What the engine's JSON-schema automaton (engine/constrained.py) can enforce, per argument.
_UNBOUNDED_SPAN = 100


def argument_schema(tool: Tool) -> dict | None:
    """The schema a forced call of `tool` is generated under: its required arguments (or, if it requires none,
    every argument the automaton can write), each in a form the engine enforces. Every JSON it allows validates
    against the tool's own schema. None: the call takes no arguments ("{}")."""
    props = tool.parameters.get("properties") or {}
    required = list(tool.parameters.get("required") or [])
    names = required or list(props)
    out: dict[str, dict] = {}
    for name in names:
        spec = enforceable(props[name])
        if spec is None:
            if name in required:
                raise UserError(
                    f"tool {tool.name!r}: argument {name!r} ({json.dumps(props[name])[:120]}) cannot be enforced "
                    "when the call is forced; forced calls support string, string enum, integer/number with a range, "
                    'and arrays of those. Use tool_choice "auto" for this tool.',
                    param="tool_choice",
                )
            continue
        out[name] = spec
    return {"type": "object", "properties": out} if out else None


def enforceable(spec: Any) -> dict | None:
    """A JSON-schema value in the form the engine's automaton enforces, when every value it allows validates
    against `spec`; None when it cannot be enforced (forced tool arguments and response_format share this)."""
    if not isinstance(spec, dict):
        return None
    enum = spec.get("enum")
    if enum is not None:
        return {"enum": list(enum)} if enum and all(isinstance(v, str) for v in enum) else None
    kind = spec.get("type")
    if kind == "string":
        limits = ("pattern", "format", "minLength", "maxLength", "const")
        return None if any(k in spec for k in limits) else {"type": "string"}
    if kind in ("integer", "number"):
        if any(k in spec for k in ("exclusiveMinimum", "exclusiveMaximum", "multipleOf", "const")):
            return None
        lo, hi = spec.get("minimum"), spec.get("maximum")
        if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in (lo, hi)):
            return None
        lo = None if lo is None else int(-(-lo // 1))  # the smallest integer allowed
        hi = None if hi is None else int(hi // 1)
        if lo is None and hi is None:
            lo, hi = 0, _UNBOUNDED_SPAN
        elif lo is None:
            lo = hi - _UNBOUNDED_SPAN
        elif hi is None:
            hi = lo + _UNBOUNDED_SPAN
        if not 0 <= hi - lo <= 10_000:
            return None
        return {"type": "integer", "minimum": lo, "maximum": hi}
    if kind == "array":
        items = enforceable(spec.get("items", {"type": "string"}))
        max_items = spec.get("maxItems", 8)
        if items is None or items.get("type") == "array" or spec.get("minItems", 0) not in (0, None):
            return None
        if not isinstance(max_items, int) or isinstance(max_items, bool) or not 1 <= max_items <= 64:
            return None
        return {"type": "array", "items": items, "maxItems": max_items}
    return None
