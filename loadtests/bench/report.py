"""The side-by-side table of a platform bench: platform vs in-process baseline, with ratios."""

from __future__ import annotations

from typing import Any

ROWS = (
    ("latency p50 (ms)", "warm_p50_ms", "baseline_p50_ms"),
    ("latency p99 (ms)", "warm_p99_ms", "baseline_p99_ms"),
    ("throughput (req/s)", "rps", "baseline_rps"),
)


def comparison_table(result: dict[str, Any]) -> str:
    lines = [f"{'':<22}{'platform':>12}{'baseline':>12}{'ratio':>10}"]
    for label, ours, theirs in ROWS:
        a, b = float(result[ours]), float(result[theirs])
        ratio = f"{a / b:.2f}x" if b else "-"
        lines.append(f"{label:<22}{a:>12.2f}{b:>12.2f}{ratio:>10}")
    if "host_path_ms_p50" in result:
        vm, outside = float(result["warm_vm_ms_p50"]), float(result["host_path_ms_p50"])
        lines.append(f"{'  of p50: in the VM':<22}{vm:>12.2f}")
        lines.append(f"{'  of p50: outside it':<22}{outside:>12.2f}")
        if "platform_around_vm_ms_p50" in result:
            around = float(result["platform_around_vm_ms_p50"])
            http = float(result["http_and_client_ms_p50"])
            lines.append(f"{'    platform, not VM':<22}{around:>12.2f}")
            lines.append(f"{'    HTTP and client':<22}{http:>12.2f}")
    lines.append(f"{'pre-warmed start (ms)':<22}{float(result['prewarmed_start_ms_p50']):>12.1f}")
    lines.append(f"{'cold start (ms)':<22}{float(result['cold_start_ms_p50']):>12.1f}")
    if "cold_template_start_ms_p50" in result:
        cold = float(result["cold_template_start_ms_p50"])
        ratio = f"{result['ratio_cold_template_to_prewarmed']:.2f}x pre-warmed"
        lines.append(f"{'  later, own template':<22}{cold:>12.1f}{ratio:>22}")
    lines.append(
        f"({result['calls']} calls per measurement, concurrency {result['concurrency']} for "
        "throughput; baseline = the same module in-process behind FastAPI, no VM)"
    )
    return "\n".join(lines)
