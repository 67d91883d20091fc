"""What every trained generator shares, tables and images alike: its accounting, and
saving and loading it as a safetensors artifact (no pickle).

A modality's base (``TableGenerator``, ``ImageGenerator``) says what else its config
holds (``modality_config``) and how to rebuild itself from it (``from_config``); a
generator says how to build its network (``build_net``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch

from training.artifacts import load_artifact, save_artifact
from training.errors import ArtifactError
from training.spec import FitSummary, PrivacyReport

__all__ = ["SavedGenerator"]


class SavedGenerator:
    """A trained generator: its network, privacy report, fit summary and training record."""

    name: ClassVar[str]
    net: Any
    privacy: PrivacyReport
    summary: FitSummary
    training: dict[str, Any]

    def model_config(self) -> dict[str, Any]:
        """The network's constructor arguments, stored in config.json."""
        return dict(vars(self.net.config))

    def modality_config(self) -> dict[str, Any]:
        """What this modality's artifact stores besides the network and the accounting."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any], net: torch.nn.Module, **common: Any) -> Any:
        """The generator from a stored config; ``common``: privacy, summary, training."""
        raise NotImplementedError

    @classmethod
    def build_net(cls, model: dict[str, Any]) -> torch.nn.Module:
        """The network of a stored ``model`` config, untrained."""
        raise NotImplementedError

    def save(self, directory: str | Path) -> Path:
        config = {
            "generator": self.name,
            **self.modality_config(),
            "model": self.model_config(),
            "privacy": self.privacy.model_dump(mode="json"),
            "summary": self.summary.model_dump(mode="json"),
            "training": self.training,
        }
        return save_artifact(Path(directory), config=config, state=self.net.state_dict())

    @classmethod
    def load(cls, directory: str | Path) -> Any:
        config, state = load_artifact(Path(directory))
        try:
            net = cls.build_net(config["model"])
            net.load_state_dict(state)
            return cls.from_config(
                config, net.eval(), privacy=PrivacyReport.model_validate(config["privacy"]),
                summary=FitSummary.model_validate(config["summary"]),
                training=config.get("training", {}),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError, RuntimeError, ArtifactError) as e:
            raise ArtifactError(f"{directory} does not hold a valid {cls.name} model: {e}") from e
