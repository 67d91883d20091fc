"""The budget chart, drawn on the server as SVG numbers (the template writes the SVG; no
chart script, no image request)."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

__all__ = ["budget_chart"]

WIDTH, HEIGHT, PAD = 560, 180, 28


def budget_chart(ledger: list[dict[str, Any]], budget: float) -> dict[str, Any]:
    """Epsilon spent after each ledger entry (charges up, refunds down) as a step line,
    with the budget as a ceiling; one step per entry, in the order they were written."""
    spent, steps = 0.0, [(0, 0.0)]
    for i, line in enumerate(ledger, start=1):
        spent += float(line["epsilon"])
        steps.append((i, max(spent, 0.0)))
    top = max(budget, spent, 1e-9) * 1.1
    span = max(len(ledger), 1)

    def x(i: int) -> float:
        return round(PAD + (WIDTH - 2 * PAD) * i / span, 1)

    def y(value: float) -> float:
        return round(HEIGHT - PAD - (HEIGHT - 2 * PAD) * value / top, 1)

    points: list[str] = []
    for (i, before), (j, after) in pairwise(steps):
        points += [f"{x(i)},{y(before)}", f"{x(j)},{y(before)}", f"{x(j)},{y(after)}"]
    if not points:
        points = [f"{x(0)},{y(0)}", f"{x(span)},{y(0)}"]
    marks = [
        {"x": x(i), "y": y(value), "label": f"{line.get('job_id') or line['reason']}: "
         f"{float(line['epsilon']):+.3g} ({line.get('outcome') or line['reason']})"}
        for (i, value), line in zip(steps[1:], ledger, strict=True)
    ]  # fmt: skip
    return {
        "width": WIDTH, "height": HEIGHT, "points": " ".join(points), "marks": marks,
        "budget_y": y(budget), "budget": budget, "spent": spent,
        "left": PAD, "right": WIDTH - PAD, "bottom": HEIGHT - PAD,
    }  # fmt: skip
