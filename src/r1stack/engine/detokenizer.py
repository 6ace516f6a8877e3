"""Incremental detokenization and stop strings: text grows only by whole characters, and text that might be the
start of a stop string is held back until it is known not to be one."""

from __future__ import annotations


class IncrementalDetokenizer:
    # A few prompt tokens of context make the first output token decode with its leading space right.
    CONTEXT = 5

    def __init__(self, tokenizer, prompt_ids: list[int], skip_special_tokens: bool):
        self.tokenizer = tokenizer
        self.skip = skip_special_tokens
        self.ids = list(prompt_ids[-self.CONTEXT :])
        self.prefix_offset = 0
        self.read_offset = len(self.ids)

    def add(self, token_id: int) -> str:
        """Append a token; return the new text it completes (empty while a character is still partial)."""
        self.ids.append(token_id)
        decode = self.tokenizer.decode
        prefix = decode(self.ids[self.prefix_offset : self.read_offset], skip_special_tokens=self.skip)
        full = decode(self.ids[self.prefix_offset :], skip_special_tokens=self.skip)
        if len(full) > len(prefix) and not full.endswith("\ufffd"):
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
            return full[len(prefix) :]
        return ""


def find_stop(text: str, new_len: int, stops: list[str]) -> tuple[int, str] | None:
    """Earliest stop string that ends inside the newly added tail of text: (index where it starts, the string)."""
    best = None
    for stop in stops:
        start = max(0, len(text) - new_len - len(stop) + 1)
        i = text.find(stop, start)
        if i != -1 and (best is None or i < best[0]):
            best = (i, stop)
    return best


def held_back(text: str, stops: list[str]) -> int:
    """How many trailing characters could still turn into a stop string (not safe to show yet)."""
    hold = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), hold, -1):
            if stop.startswith(text[-k:]):
                hold = k
                break
    return hold
