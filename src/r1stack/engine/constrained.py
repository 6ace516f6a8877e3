"""Constrained decoding: a byte-level automaton compiled from a small JSON-schema subset, and the logits processor
that lets only tokens through which keep the output a valid prefix and still leave room to finish in max_tokens.

Supported schema: an object whose properties are written in the given order, each one of
  {"enum": [str, ...]}, {"type": "integer", "minimum": a, "maximum": b} (small ranges), {"type": "string"},
  {"type": "array", "items": <one of the above>, "maxItems": n}.
The layout is fixed (`{"a": 1, "b": [2, 3]}`) so the automaton stays small; `json.loads` reads it all the same.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache

import torch

from r1stack.errors import UserError

# Bytes allowed raw inside a JSON string: printable ASCII except quote and backslash, and any UTF-8 byte.
_STRING_BYTES = frozenset(b for b in range(0x20, 0x100) if b not in (0x22, 0x5C, 0x7F))
_ESCAPES = b'"\\/bfnrt'


@dataclass
class Automaton:
    """A DFA over bytes. `edges[s]` maps a byte to the next state; `loops[s]` is a byte set that stays in s."""

    edges: list[dict[int, int]] = field(default_factory=list)
    loops: list[frozenset[int]] = field(default_factory=list)
    accept: int = -1

    def new(self, loops: frozenset[int] = frozenset()) -> int:
        self.edges.append({})
        self.loops.append(loops)
        return len(self.edges) - 1

    def step(self, state: int, byte: int) -> int:
        nxt = self.edges[state].get(byte)
        if nxt is not None:
            return nxt
        return state if byte in self.loops[state] else -1

    def walk(self, state: int, data: bytes) -> int:
        for b in data:
            state = self.step(state, b)
            if state < 0:
                return -1
        return state


class _Builder:
    """Builds back to front: each piece is compiled knowing the state that follows it, so a word that may end
    (the "1" of "10") carries the follower's first edges as well as its own."""

    def __init__(self) -> None:
        self.dfa = Automaton()

    def follow(self, state: int, nxt: int) -> None:
        # `state` may also end here: it inherits nxt's moves (pieces never overlap in their first bytes).
        for b, t in self.dfa.edges[nxt].items():
            self.dfa.edges[state].setdefault(b, t)

    def literal(self, text: bytes, nxt: int) -> int:
        for b in reversed(text):
            s = self.dfa.new()
            self.dfa.edges[s][b] = nxt
            nxt = s
        return nxt

    def words(self, words: list[bytes], nxt: int) -> int:
        """A trie of alternatives (enum values, the decimal forms of an integer range)."""
        root = self.dfa.new()
        ends = []
        for w in words:
            s = root
            for b in w:
                t = self.dfa.edges[s].get(b)
                if t is None:
                    t = self.dfa.new()
                    self.dfa.edges[s][b] = t
                s = t
            ends.append(s)
        for s in ends:
            self.follow(s, nxt)
        return root

    def string(self, nxt: int) -> int:
        body = self.dfa.new(loops=_STRING_BYTES)
        escape = self.dfa.new()
        for b in _ESCAPES:
            self.dfa.edges[escape][b] = body
        self.dfa.edges[body][ord("\\")] = escape
        self.dfa.edges[body][ord('"')] = nxt
        return self.literal(b'"', body)

    def value(self, spec: dict, nxt: int) -> int:
        if "enum" in spec:
            values = [json.dumps(str(v), ensure_ascii=False).encode() for v in spec["enum"]]
            if not values:
                raise UserError("an enum in the output schema needs at least one value")
            return self.words(values, nxt)
        kind = spec.get("type")
        if kind == "integer":
            lo, hi = int(spec.get("minimum", 0)), int(spec.get("maximum", 100))
            if not 0 <= hi - lo <= 10_000:
                raise UserError(
                    "an integer in the output schema needs minimum and maximum at most 10,000 apart"
                )
            return self.words([str(i).encode() for i in range(lo, hi + 1)], nxt)
        if kind == "string":
            return self.string(nxt)
        if kind == "array":
            return self.array(spec.get("items", {"type": "string"}), int(spec.get("maxItems", 8)), nxt)
        raise UserError(f"output schema: unsupported value {spec!r}; use enum, integer, string or array")

    def array(self, items: dict, max_items: int, nxt: int) -> int:
        close = self.literal(b"]", nxt)
        # Unrolled from the last item back, so the count is bounded: after item k comes "]" or ", " + item k+1.
        tail = close
        for _ in range(max(1, max_items) - 1):
            item = self.value(items, tail)
            sep = self.dfa.new()
            self.follow(sep, close)
            self.follow(sep, self.literal(b", ", item))
            tail = sep
        first = self.value(items, tail)
        opened = self.dfa.new()
        self.follow(opened, close)
        self.follow(opened, first)
        return self.literal(b"[", opened)

    def obj(self, props: dict[str, dict], nxt: int) -> int:
        state = self.literal(b"}", nxt)
        names = list(props)
        for i in reversed(range(len(names))):
            state = self.value(props[names[i]], state)
            head = ("{" if i == 0 else ", ") + json.dumps(names[i], ensure_ascii=False) + ": "
            state = self.literal(head.encode(), state)
        return state


def compile_schema(schema: dict) -> tuple[Automaton, int]:
    """The automaton for a schema and its start state."""
    props = schema.get("properties")
    if schema.get("type", "object") != "object" or not props:
        raise UserError("the output schema must be an object with properties")
    b = _Builder()
    b.dfa.accept = b.dfa.new()
    start = b.obj(props, b.dfa.accept)
    return b.dfa, start


def strict_schema(schema: dict) -> dict:
    """The schema as standard JSON Schema says what the automaton enforces: every property present, no others,
    enum values strings, arrays of at most maxItems. What an upstream's `response_format` gets, and what
    answers from anywhere are validated against."""

    def value(spec: dict) -> dict:
        if "enum" in spec:
            return {"type": "string", "enum": [str(v) for v in spec["enum"]]}
        kind = spec.get("type")
        if kind == "integer":
            return {
                "type": "integer",
                "minimum": int(spec.get("minimum", 0)),
                "maximum": int(spec.get("maximum", 100)),
            }
        if kind == "array":
            items = value(spec.get("items", {"type": "string"}))
            return {"type": "array", "items": items, "maxItems": max(1, int(spec.get("maxItems", 8)))}
        return {"type": "string"}

    compile_schema(schema)  # the same subset, the same errors
    props = {name: value(spec) for name, spec in schema["properties"].items()}
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def response_format(schema: dict, name: str = "answer") -> dict:
    """The OpenAI `response_format` for a schema, as vLLM and SGLang accept it (what a gateway sends upstream)."""
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": strict_schema(schema), "strict": True},
    }


def schema_error(schema: dict, text: str) -> str | None:
    """Why `text` is not an answer to `schema` (None: it is one)."""
    import jsonschema

    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        return f"not JSON ({e.msg} at position {e.pos})"
    err = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(strict_schema(schema)).iter_errors(data)
    )
    if err is None:
        return None
    where = "/".join(str(p) for p in err.absolute_path)
    return f"{where + ': ' if where else ''}{err.message}"


# ---- tokens as bytes ---------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    # GPT-2's reversible byte <-> printable-character table, which byte-level BPE vocabularies are written in.
    bs = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


def token_bytes(tokenizer) -> list[bytes | None]:
    """Each vocabulary id's bytes as it appears in output text; None for special tokens."""
    size = len(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(list(range(size)))
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    special |= set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    dec = _byte_decoder()
    byte_level = all(ch in dec for p in pieces[:2000] if p for ch in p)
    out: list[bytes | None] = []
    for i, p in enumerate(pieces):
        if i in special or p is None:
            out.append(None)
        elif byte_level:
            out.append(bytes(dec[ch] for ch in p) if all(ch in dec for ch in p) else None)
        elif p.startswith("<0x") and p.endswith(">") and len(p) == 6:  # SentencePiece byte fallback
            out.append(bytes([int(p[3:5], 16)]))
        else:
            out.append(p.replace("\u2581", " ").encode())
    return out


class _Trie:
    """The vocabulary as a byte trie, so a walk from one automaton state prunes every dead prefix at once."""

    def __init__(self, vocab: list[bytes | None]):
        self.children: list[dict[int, int]] = [{}]
        self.ids: list[list[int]] = [[]]
        for tid, data in enumerate(vocab):
            if not data:
                continue
            node = 0
            for b in data:
                nxt = self.children[node].get(b)
                if nxt is None:
                    nxt = len(self.children)
                    self.children.append({})
                    self.ids.append([])
                    self.children[node][b] = nxt
                node = nxt
            self.ids[node].append(tid)


@dataclass
class _StateTable:
    ids: torch.Tensor  # allowed token ids, sorted by how many tokens they leave to finish (ascending)
    need: list[int]  # need[i]: tokens still needed after ids[i]
    nxt: dict[int, int]  # token id -> next state


class Grammar:
    """One schema over one tokenizer: per-state token tables computed on first use and kept (thread-safe)."""

    def __init__(self, schema: dict, tokenizer, eos_token_ids: list[int]):
        self.dfa, self.start = compile_schema(schema)
        self.vocab = _vocab(tokenizer)
        self.trie = _trie(tokenizer)
        self.eos = sorted(set(eos_token_ids))
        self.dist = self._distances()
        if self.dist[self.start] < 0:
            raise UserError("the output schema cannot be written with this tokenizer's single-byte tokens")
        self._tables: dict[int, _StateTable] = {}
        self._lock = threading.Lock()
        # All tables now (well under a second for the app schemas), so the engine's step never waits on one.
        for state in range(len(self.dfa.edges)):
            if self.dist[state] > 0:
                self.table(state)

    @property
    def min_tokens(self) -> int:
        """The fewest tokens any complete answer takes (max_tokens must be at least this)."""
        return self.dist[self.start]

    def _distances(self) -> list[int]:
        # Fewest single-byte tokens from each state to the end: a safe upper bound on the tokens needed.
        single = {d[0] for d in self.vocab if d and len(d) == 1}
        n = len(self.dfa.edges)
        rev: list[list[int]] = [[] for _ in range(n)]
        for s in range(n):
            for b, t in self.dfa.edges[s].items():
                if b in single:
                    rev[t].append(s)
        dist = [-1] * n
        dist[self.dfa.accept] = 0
        queue = deque([self.dfa.accept])
        while queue:
            t = queue.popleft()
            for s in rev[t]:
                if dist[s] < 0:
                    dist[s] = dist[t] + 1
                    queue.append(s)
        return dist

    def table(self, state: int) -> _StateTable:
        tab = self._tables.get(state)
        if tab is None:
            with self._lock:
                tab = self._tables.get(state) or self._build(state)
                self._tables[state] = tab
        return tab

    def _build(self, state: int) -> _StateTable:
        nxt: dict[int, int] = {}
        stack = [(0, state)]
        children, ids, step, dist = self.trie.children, self.trie.ids, self.dfa.step, self.dist
        while stack:
            node, s = stack.pop()
            for b, child in children[node].items():
                t = step(s, b)
                if t < 0:
                    continue
                if dist[t] >= 0:
                    for tid in ids[child]:
                        nxt[tid] = t
                stack.append((child, t))
        order = sorted(nxt, key=lambda tid: dist[nxt[tid]])
        return _StateTable(torch.tensor(order, dtype=torch.long), [dist[nxt[t]] for t in order], nxt)

    def advance(self, state: int, token: int) -> int:
        if state < 0 or state == self.dfa.accept:
            return -1
        return self.table(state).nxt.get(token, -1)

    def allowed(self, state: int, budget: int) -> torch.Tensor:
        """Token ids allowed in `state` when `budget` tokens may follow this one."""
        if state == self.dfa.accept or state < 0:
            return torch.tensor(self.eos, dtype=torch.long)
        tab = self.table(state)
        # need is sorted: the allowed ids are a prefix of the table.
        lo, hi = 0, len(tab.need)
        while lo < hi:
            mid = (lo + hi) // 2
            if tab.need[mid] <= budget:
                lo = mid + 1
            else:
                hi = mid
        return tab.ids[:lo]


_VOCABS: dict[int, list[bytes | None]] = {}
_TRIES: dict[int, _Trie] = {}
_GRAMMARS: dict[tuple[int, str], Grammar] = {}
_cache_lock = threading.Lock()


def _vocab(tokenizer) -> list[bytes | None]:
    with _cache_lock:
        v = _VOCABS.get(id(tokenizer))
        if v is None:
            v = _VOCABS[id(tokenizer)] = token_bytes(tokenizer)
        return v


def _trie(tokenizer) -> _Trie:
    vocab = _vocab(tokenizer)
    with _cache_lock:
        t = _TRIES.get(id(tokenizer))
        if t is None:
            t = _TRIES[id(tokenizer)] = _Trie(vocab)
        return t


def grammar_for(schema: dict, tokenizer, eos_token_ids: list[int]) -> Grammar:
    """The grammar for (schema, tokenizer), built once per process and shared by every request."""
    key = (id(tokenizer), json.dumps(schema, sort_keys=True) + repr(sorted(eos_token_ids)))
    g = _GRAMMARS.get(key)
    if g is None:
        g = Grammar(schema, tokenizer, eos_token_ids)
        _GRAMMARS[key] = g
    return g


class JsonSchemaProcessor:
    """vLLM-style logits processor `fn(prompt_token_ids, output_token_ids, logits)` for one request.

    Its state is derived from output_token_ids (cached by prefix), so n > 1 sequences may share it.
    """

    def __init__(self, grammar: Grammar, max_tokens: int):
        if max_tokens < grammar.min_tokens:
            raise UserError(
                f"max_tokens {max_tokens} is too small for this output schema; "
                f"it needs at least {grammar.min_tokens}"
            )
        self.grammar = grammar
        self.max_tokens = max_tokens
        self._states: dict[tuple[int, ...], int] = {(): grammar.start}

    def state_of(self, output_ids: list[int]) -> int:
        key = tuple(output_ids)
        s = self._states.get(key)
        if s is None:
            parent = self._states.pop(key[:-1], None)
            if parent is None:  # not seen (another sequence of the request moved on): replay from the start
                parent = self.grammar.start
                for t in key[:-1]:
                    parent = self.grammar.advance(parent, t)
            s = self.grammar.advance(parent, key[-1])
            self._states[key] = s
        return s

    def __call__(self, prompt_ids: list[int], output_ids: list[int], logits: torch.Tensor) -> torch.Tensor:
        state = self.state_of(output_ids)
        budget = self.max_tokens - len(output_ids) - 1
        ids = self.grammar.allowed(state, budget)
        if ids.device != logits.device:
            ids = ids.to(logits.device)
        out = torch.full_like(logits, -float("inf"))
        out[ids] = logits[ids]
        return out


def json_schema_processor(
    schema: dict, tokenizer, eos_token_ids: list[int], max_tokens: int
) -> JsonSchemaProcessor:
    """A fresh per-request processor; the grammar behind it is shared."""
    return JsonSchemaProcessor(grammar_for(schema, tokenizer, eos_token_ids), max_tokens)
