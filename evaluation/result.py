"""What an evaluation hands back, tables and images alike: the report document and its
gates. ``data`` is what report.json holds (validated against its modality's schema
when written); the gates decide whether a model may be released without an override.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Evaluation"]


@dataclass
class Evaluation:
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def gates(self) -> list[dict[str, str]]:
        return list(self.data["gates"])

    @property
    def passed(self) -> bool:
        return all(g["status"] != "fail" for g in self.gates)

    @property
    def failed(self) -> list[str]:
        return [g["name"] for g in self.gates if g["status"] == "fail"]
