"""The interactive loop behind `r1stack chat`: streams tokens, shows <think> reasoning dimmed and apart."""

from __future__ import annotations

import uuid

from rich.console import Console

from r1stack.engine.async_engine import AsyncEngine
from r1stack.engine.config import EngineArgs
from r1stack.engine.sampling_params import SamplingParams

console = Console(highlight=False)


class ThinkSplitter:
    """Splits streamed text into (reasoning, answer) pieces at <think> / </think>, tags split across chunks."""

    OPEN, CLOSE = "<think>", "</think>"

    def __init__(self, in_reasoning: bool = False):
        self.in_reasoning = in_reasoning
        self.buf = ""

    def feed(self, text: str) -> list[tuple[bool, str]]:
        self.buf += text
        pieces: list[tuple[bool, str]] = []
        while True:
            tag = self.CLOSE if self.in_reasoning else self.OPEN
            i = self.buf.find(tag)
            if i != -1:
                pieces.append((self.in_reasoning, self.buf[:i]))
                self.buf = self.buf[i + len(tag) :]
                self.in_reasoning = not self.in_reasoning
                continue
            keep = next(
                (k for k in range(min(len(tag) - 1, len(self.buf)), 0, -1) if tag.startswith(self.buf[-k:])),
                0,
            )
            pieces.append((self.in_reasoning, self.buf[: len(self.buf) - keep]))
            self.buf = self.buf[len(self.buf) - keep :]
            return [p for p in pieces if p[1]]

    def flush(self) -> list[tuple[bool, str]]:
        rest, self.buf = self.buf, ""
        return [(self.in_reasoning, rest)] if rest else []


async def run_chat(args: EngineArgs, params: SamplingParams, system: str | None) -> None:
    engine = AsyncEngine(args)
    await engine.start()
    info = engine.model_info
    console.print(
        f"[bold]r1stack chat[/] — {info.name} ({info.device}, {info.dtype}); empty line or Ctrl-D quits"
    )
    history: list[dict] = [{"role": "system", "content": system}] if system else []
    while True:
        try:
            line = console.input("[bold cyan]you>[/] ")
        except (EOFError, KeyboardInterrupt):
            break
        if not line.strip():
            break
        history.append({"role": "user", "content": line})
        prompt = engine.render_chat(history)
        # R1 templates end the prompt inside <think>: the reply starts as reasoning.
        splitter = ThinkSplitter(in_reasoning=prompt.rstrip().endswith("<think>"))
        shown, answer = 0, []
        async for out in engine.generate(
            prompt,
            params,
            uuid.uuid4().hex,
            prompt_token_ids=engine.engine.tokenize(prompt, add_special_tokens=False),
        ):
            text = out.outputs[0].text
            for reasoning, piece in splitter.feed(text[shown:]):
                _show(reasoning, piece, answer)
            shown = len(text)
        for reasoning, piece in splitter.flush():
            _show(reasoning, piece, answer)
        console.print()
        history.append({"role": "assistant", "content": "".join(answer).strip()})
    await engine.shutdown()


def _show(reasoning: bool, piece: str, answer: list[str]) -> None:
    if reasoning:
        console.print(piece, style="dim italic", end="", markup=False)
    else:
        answer.append(piece)
        console.print(piece, end="", markup=False)
