"""Fixtures for the knowledge-base tests: a data directory per test, both stores, a small bilingual corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from r1stack.config import KBSettings, Settings
from r1stack.kb import knowledge_base

CORPUS = {
    "banking.md": """# 商业银行流动性风险管理
商业银行应当建立健全流动性风险管理体系，对流动性风险进行有效识别、计量、监测和控制。
流动性覆盖率不得低于百分之一百。董事会承担流动性风险管理的最终责任。

# 信用风险
贷款五级分类包括正常、关注、次级、可疑和损失五个类别。不良贷款是指次级、可疑和损失类贷款。
""",
    "hospital.md": """# 急诊分诊流程
胸痛患者应在十分钟内完成心电图检查。分诊护士根据生命体征确定患者的优先级别。
发热门诊实行预检分诊制度，所有发热患者须先测量体温。
""",
    "python.txt": """Python is a programming language that lets you work quickly and integrate systems more effectively.
The garbage collector frees memory that is no longer reachable. Reference counting handles most objects.
A virtual environment isolates the packages of one project from those of another.
""",
    "astronomy.txt": """The Moon orbits the Earth once every twenty-seven days. Its gravity raises the ocean tides.
Jupiter is the largest planet in the solar system and has dozens of moons.
""",
}


@pytest.fixture(params=["chroma", "milvus"])
def store(request) -> str:
    return request.param


@pytest.fixture
def settings(tmp_path: Path, store: str, monkeypatch) -> Settings:
    monkeypatch.setenv("R1STACK_DATA_DIR", str(tmp_path / "data"))
    # The test machine is small and shared: oversubscribed torch threads embed ten times slower.
    monkeypatch.setenv("R1STACK_KB__EMBED_THREADS", "1")
    s = Settings(
        data_dir=tmp_path / "data",
        kb=KBSettings(store=store, chunk_tokens=64, chunk_overlap=8, embed_threads=1),
    )
    yield s
    for name in knowledge_base.list_kbs(s):
        knowledge_base.forget(s, name)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name, text in CORPUS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def corpus_texts() -> dict[str, str]:
    return CORPUS
