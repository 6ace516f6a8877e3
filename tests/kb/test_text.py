"""Sentence splitting, chunking and BM25 tokens for Chinese and English."""

from r1stack.kb.chunker import chunk_sections
from r1stack.kb.models import Section
from r1stack.kb.readers import split_markdown
from r1stack.kb.text import bm25_tokens, count_tokens, split_sentences


def test_sentences_end_at_chinese_and_english_marks():
    text = "第一句。第二句！第三句？第四句；Pi is 3.14 here. Visit example.com now! Done?"
    assert split_sentences(text) == [
        "第一句。",
        "第二句！",
        "第三句？",
        "第四句；",
        "Pi is 3.14 here.",
        "Visit example.com now!",
        "Done?",
    ]


def test_chunks_break_at_sentence_ends_and_overlap():
    sentences = [f"这是第{i}个句子，用来测试分块。" for i in range(40)]
    chunks = chunk_sections([Section("".join(sentences), "标题")], chunk_tokens=50, overlap=15)
    assert len(chunks) > 3
    for c in chunks:
        assert count_tokens(c.text) <= 50
        assert c.text.endswith("。")  # never cut inside a sentence
        assert c.heading == "标题"
    # Consecutive chunks share their boundary sentence(s).
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a.text.split("。")[-2] + "。" in b.text
    # Every sentence survives chunking.
    joined = "".join(c.text for c in chunks)
    assert all(s in joined for s in sentences)


def test_a_sentence_longer_than_a_chunk_is_split_not_lost():
    long = " ".join(f"word{i}" for i in range(300))
    chunks = chunk_sections([Section(long)], chunk_tokens=100, overlap=10)
    assert len(chunks) == 3
    assert " ".join(c.text for c in chunks).split() == long.split()


def test_headings_start_new_chunks():
    sections = split_markdown("# 一\n甲乙丙。\n\n## Two\nalpha beta.\n```\n# not a heading\n```\n")
    assert [s.heading for s in sections] == ["一", "Two"]
    assert "# not a heading" in sections[1].text
    chunks = chunk_sections(sections, 64, 8)
    assert [c.heading for c in chunks] == ["一", "Two"]


def test_bm25_tokens_segment_chinese_into_words():
    tokens = bm25_tokens("流动性风险管理体系")
    assert "流动性" in tokens and "风险" in tokens and "管理" in tokens
    assert bm25_tokens("The Garbage Collector frees memory") == ["garbage", "collector", "frees", "memory"]


def test_chunks_fit_the_embedders_window():
    import json
    import pydoc

    from r1stack.kb.chunker import Window
    from r1stack.kb.embedder import load_embedder

    emb = load_embedder(None)
    model = emb.model
    assert emb.window() == model.max_seq_length - 2  # [CLS] and [SEP]
    # pydoc text is dense with identifiers that cost several sub-words each: 256 words overflow 256 tokens.
    text = pydoc.render_doc(json, renderer=pydoc.plaintext)
    sections = [Section(text, "json module")]

    def model_tokens(c) -> int:
        return len(model.tokenizer(f"{c.heading}\n{c.text}", verbose=False)["input_ids"])

    unbounded = chunk_sections(sections, 256, 32)
    assert max(model_tokens(c) for c in unbounded) > model.max_seq_length
    fitted = chunk_sections(sections, 256, 32, Window(emb.window(), emb.count_tokens))
    assert all(model_tokens(c) <= model.max_seq_length for c in fitted)
    assert all(count_tokens(c.text) <= 256 for c in fitted)
    joined = " ".join(c.text for c in fitted)
    assert all(s in joined for s in split_sentences(text))  # nothing is lost
