"""`plan --check-guide`: the deployment guide's recommended configurations, each re-planned, with our verdict."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources

from r1stack.deploy.hardware import GB
from r1stack.deploy.models import catalogue
from r1stack.deploy.planner import NO_FIT, Plan, PlanRequest, plan

# Does the configuration run at all: one 4K-token conversation. Serving capacity is `plan`'s job.
CHECK_CONTEXT = 4096
CHECK_CONCURRENCY = 1


@dataclass
class GuideCheck:
    id: str
    claim: str
    status: str  # "holds" | "wrong" | "no-such-model"
    finding: str
    plan: Plan
    alternatives: list[Plan] = field(default_factory=list)


def load_claims() -> list[dict]:
    text = resources.files("r1stack.deploy").joinpath("data/guide.json").read_text(encoding="utf-8")
    return json.loads(text)["claims"]


def check_guide() -> list[GuideCheck]:
    return [check_claim(c) for c in load_claims()]


def check_claim(c: dict) -> GuideCheck:
    models = catalogue()
    model_id = c["model"]
    missing = model_id not in models
    if missing:
        target = c.get("nominal_params", 0)
        model_id = min(
            models, key=lambda m: abs(models[m].param_count() - target) if not models[m].is_moe else 1e30
        )

    def run(hardware: str, quant: str, nodes: int = 1) -> Plan:
        return plan(
            PlanRequest(
                model=model_id,
                hardware=hardware,
                nodes=nodes,
                quant=quant,
                context=CHECK_CONTEXT,
                concurrency=CHECK_CONCURRENCY,
            )
        )

    main = run(c["hardware"], c["quant"])
    alts = [run(a["hardware"], a["quant"], a.get("nodes", 1)) for a in c.get("alternatives", [])]
    fitting = [a for a in alts if a.verdict != NO_FIT]
    fix = (
        "; what works: "
        + ", ".join(f"{a.quant} on {a.cluster.describe()} ({a.weights_gb:,.1f} GB)" for a in fitting)
        if fitting
        else ""
    )
    usable = main.usable_per_device * main.cluster.total_devices / GB
    total = main.cluster.device.memory_gb * main.cluster.total_devices
    if missing:
        m = models[model_id]
        status = "no-such-model"
        finding = (
            f"there is no {c['model']}: the R1 family has 1.5B, 7B, 8B, 14B, 32B, 70B distills and the 671B MoE; "
            f"the nearest is {model_id} ({m.param_count() / 1e9:.2f}B), whose {main.quant} weights are "
            f"{main.weights_gb:,.1f} GB against {total:,.0f} GB ({usable:,.1f} GB usable): "
            f"{'does not fit' if main.verdict == NO_FIT else 'fits'}{fix}"
        )
    elif main.verdict == NO_FIT:
        status = "wrong"
        finding = (
            f"{main.model.name} in {main.quant} weighs {main.weights_gb:,.1f} GB "
            f"({main.model.param_count() / 1e9:,.1f}B params x {main.weights.bytes_per_param:.2f} B) but "
            f"{main.cluster.describe()} has {total:,.0f} GB ({usable:,.1f} GB usable): does not fit{fix}"
        )
    else:
        status = "holds"
        finding = (
            f"{main.model.name} in {main.quant}: {main.weights_gb:,.1f} GB on {main.cluster.describe()} "
            f"({usable:,.1f} GB usable) fits with KV for {main.kv_tokens:,} tokens"
        )
    return GuideCheck(c["id"], c["claim"], status, finding, main, alts)
