"""Sentence splitting and tokenising for Chinese and English: the units chunking and BM25 count in."""

from __future__ import annotations

import logging
import re

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# One token: a CJK character, or a run of letters/digits, or one other visible character.
_TOKEN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W_]+|[^\s\w]", re.UNICODE)
# Sentence ends: CJK marks end a sentence wherever they stand (closing quotes stay with it);
# . ! ? ; only before whitespace, so 3.14 and example.com stay whole.
_SENTENCE_END = re.compile(r"(?<=[。！？；])[”’」』）)]*|(?<=[.!?;])[\"')\]]*(?=\s)")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOPWORDS = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the to was were will with "
    "this these those which what how when where who why does do did can".split()
)


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


def count_tokens(text: str) -> int:
    """Tokenizer-independent size: CJK characters and words each count one (close to sub-word counts)."""
    return len(_TOKEN.findall(text))


def token_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _TOKEN.finditer(text)]


def split_sentences(text: str) -> list[str]:
    """Sentences, with line breaks as hard ends (lists, tables, CSV rows have no full stops)."""
    out: list[str] = []
    for line in text.splitlines():
        start = 0
        for m in _SENTENCE_END.finditer(line):
            if m.end() > start:
                piece = line[start : m.end()].strip()
                if piece:
                    out.append(piece)
                start = m.end()
        rest = line[start:].strip()
        if rest:
            out.append(rest)
    return out


_jieba = None


def _get_jieba():
    global _jieba
    if _jieba is None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        _jieba = jieba
    return _jieba


def bm25_tokens(text: str) -> list[str]:
    """Words for BM25: jieba segments CJK runs (search mode also yields sub-words), words split elsewhere."""
    text = text.lower()
    if not has_cjk(text):
        return [w for w in _WORD.findall(text) if w not in _STOPWORDS]
    jieba = _get_jieba()
    tokens: list[str] = []
    for word in jieba.cut_for_search(text):
        for w in _WORD.findall(word):  # drops punctuation and spaces that jieba returns as words
            if w not in _STOPWORDS:
                tokens.append(w)
    return tokens
