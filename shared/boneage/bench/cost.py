"""What the measured figures cost on AWS Lambda (the Markdown report's last section)."""

from __future__ import annotations

from typing import Any


# AWS Lambda x86 pricing, us-east-1, first tier (https://aws.amazon.com/lambda/pricing/, read 2026-11):
# $0.0000166667 per GB-second and $0.20 per million requests. 1,769 MB buys one vCPU
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html), so 2 vCPUs = 3,538 MB.
GB_SECOND_USD = 0.0000166667
REQUEST_USD = 0.20 / 1_000_000
MB_PER_VCPU = 1769


def lambda_cost(report: dict[str, Any]) -> list[str]:
    """What the figures mean for a Lambda function sized like this host (2 vCPUs)."""
    c = report.get("clinical") or {}
    e2e = c.get("e2e_p50_ms_avx2") or c.get("e2e_p50_ms")
    if not e2e:
        return []
    vcpus = report["host"].get("threads") or 2
    memory_mb = max(MB_PER_VCPU * vcpus, int((c.get("peak_rss_mb") or 0) * 1.3))
    cost = (e2e / 1000) * (memory_mb / 1024) * GB_SECOND_USD * 1000 + REQUEST_USD * 1000
    return ["", "## What it means on Lambda", "",
            f"- Memory: {memory_mb} MB buys {vcpus} vCPUs (1,769 MB per vCPU), the CPU this bench ran on; "
            f"peak RSS {c.get('peak_rss_mb')} MB fits with room. Less memory means fewer vCPUs and "
            "proportionally slower inference; more than 6 vCPUs do not help one image at a time.",
            f"- Clinical end to end under the AVX2 cap: {e2e} ms p50 -> about ${cost:.4f} per 1,000 assessments "
            f"({memory_mb / 1024:.2f} GB x {e2e / 1000:.2f} s x $0.0000166667/GB-s + $0.20 per million requests; "
            "x86 us-east-1 list price), warm invocations; a cold start adds its init time once per container."]
