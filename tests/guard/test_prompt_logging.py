"""guard.pii_on_prompts: the chat pipeline redacts a prompt under the caller's policy before the audit log keeps it
(in full text or as its digest); without the setting the prompt is logged as sent."""

import json

import pytest

from r1stack.config import Settings
from r1stack.guard.audit import sha256_text
from r1stack.pipeline import Pipeline, TurnRecord

PROMPT = "我的身份证号是11010519491231002X，手机13812345678"


def record(settings: Settings, key_id: str | None = None) -> dict:
    pipeline, _ = Pipeline.from_settings(None, settings)  # the audit path needs no engine
    pipeline.record(
        TurnRecord(
            request_id="req-1",
            key_id=key_id,
            model="smollm2-135m-instruct",
            endpoint="/v1/chat/completions",
            prompt=PROMPT,
            output="好的",
            sources=[],
            web_queries=[],
            redactions={},
            blocked=False,
            finish_reason="stop",
            prompt_tokens=10,
            completion_tokens=2,
        )
    )
    (path,) = settings.audit_dir.glob("audit-*.jsonl")
    return json.loads(path.read_text().splitlines()[-1])


@pytest.mark.parametrize("full_text", [True, False])
def test_prompt_is_redacted_before_it_is_logged(tmp_path, full_text):
    settings = Settings(data_dir=tmp_path, guard={"pii_on_prompts": True, "audit_full_text": full_text})
    rec = record(settings)
    logged = "我的身份证号是[身份证号]，手机[手机号]"
    if full_text:
        assert rec["prompt"] == logged
    else:
        assert rec["prompt_sha256"] == sha256_text(logged)
    assert "11010519491231002X" not in json.dumps(rec, ensure_ascii=False)


def test_prompt_follows_the_callers_policy(tmp_path):
    settings = Settings(
        data_dir=tmp_path,
        guard={"pii_on_prompts": True, "audit_full_text": True, "key_policies": {"k-ops": "mask"}},
    )
    assert record(settings, "k-ops")["prompt"] == "我的身份证号是**************002X，手机*******5678"


def test_without_the_setting_the_prompt_is_logged_as_sent(tmp_path):
    settings = Settings(data_dir=tmp_path, guard={"audit_full_text": True})
    assert record(settings)["prompt"] == PROMPT
