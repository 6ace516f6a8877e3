"""The DeepSeek-R1 reasoning parser on scripted token streams: every split of the tags across chunk boundaries
gives the same fields as the whole text, and reasoning never shows up in content while streaming."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r1stack.server.reasoning import ReasoningParser, split_reasoning
from r1stack.server.shaping import ChoiceShaper

# (model output, expected reasoning, expected content)
CASES = [
    # The usual R1 case: the template put "<think>\n" in the prompt, so only </think> comes back.
    (
        "Let me add 2 and 2.\nThat is 4.\n</think>\n\nThe answer is 4.",
        "Let me add 2 and 2.\nThat is 4.",
        "The answer is 4.",
    ),
    # Builds that emit <think> themselves.
    ("<think>\nhmm, short.\n</think>\n\n4", "hmm, short.", "4"),
    ("\n\n<think>x</think>y", "x", "y"),
    # Cut by max_tokens inside the reasoning: all of it is reasoning.
    ("I need to think about this carefully\n\n", "I need to think about this carefully", ""),
    ("I am cut mid-tag </thi", "I am cut mid-tag </thi", ""),
    # Empty reasoning.
    ("</think>\n\nJust the answer.", None, "Just the answer."),
    ("<think>\n\n</think>\n\nJust the answer.", None, "Just the answer."),
    # A second tag inside the answer is the answer's business.
    ("r</think>c <think> and </think> stay", "r", "c <think> and </think> stay"),
    ("", None, ""),
    ("<think>", None, ""),
    ("中文推理过程。</think>\n\n答案是四。", "中文推理过程。", "答案是四。"),
]


def _stream(chunks: list[str]) -> tuple[str | None, str, list[str]]:
    p = ReasoningParser()
    reasoning, content, seen_content = "", "", []
    for c in chunks:
        d = p.feed(c)
        reasoning += d.reasoning
        content += d.content
        seen_content.append(d.content)
    d = p.finish()
    return (reasoning + d.reasoning) or None, content + d.content, seen_content


@pytest.mark.parametrize("text,reasoning,content", CASES)
def test_whole_text(text, reasoning, content):
    assert split_reasoning(text) == (reasoning, content)


@pytest.mark.parametrize("text,reasoning,content", CASES)
def test_every_two_and_three_way_split(text, reasoning, content):
    n = len(text)
    for i, j in itertools.combinations_with_replacement(range(n + 1), 2):
        r, c, _ = _stream([text[:i], text[i:j], text[j:]])
        assert (r, c) == (reasoning, content), (i, j)


@pytest.mark.parametrize("text,reasoning,content", CASES)
def test_one_character_at_a_time_never_leaks_reasoning(text, reasoning, content):
    r, c, seen = _stream(list(text))
    assert (r, c) == (reasoning, content)
    # Until the stream has passed the closing tag, nothing at all is shown as content.
    boundary = text.find("</think>")
    for i, shown in enumerate(seen):
        if boundary < 0 or i < boundary + len("</think>") - 1:
            assert shown == "", (i, shown)


@given(
    reasoning=st.text(st.characters(blacklist_characters="<>"), max_size=40),
    content=st.text(max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=120), max_size=8),
    open_tag=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_random_streams_agree_with_the_whole(reasoning, content, cuts, open_tag):
    text = ("<think>\n" if open_tag else "") + reasoning + "\n</think>\n\n" + content
    cut = sorted({min(c, len(text)) for c in cuts})
    chunks = [text[a:b] for a, b in zip([0, *cut], [*cut, len(text)], strict=True)]
    r, c, seen = _stream(chunks)
    assert (r, c) == split_reasoning(text)
    assert (r or "") == reasoning.strip()
    assert c == content.lstrip()


class _Upper:
    """A stand-in output filter that holds back one character, to check the shaper flushes it per field."""

    def __init__(self):
        self.held = ""

    def feed(self, text: str) -> str:
        self.held += text
        out, self.held = self.held[:-1], self.held[-1:]
        return out.upper()

    def flush(self) -> str:
        out, self.held = self.held, ""
        return out.upper()


def test_shaper_filters_each_field_and_flushes():
    s = ChoiceShaper(True, _Upper)
    parts = [s.feed(c) for c in ["abc\n</thi", "nk>\n\nxy", "z"]] + [s.finish()]
    assert "".join(p.reasoning for p in parts) == "ABC"
    assert "".join(p.content for p in parts) == "XYZ"
    plain = ChoiceShaper(False, None)
    assert plain.feed("<think>a</think>b").content == "<think>a</think>b"
