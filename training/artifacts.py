"""Trained generators on disk: ``config.json`` plus ``model.safetensors``.

Loading never unpickles: the config is JSON validated by pydantic, the weights are
safetensors, and the config records the weights' SHA-256 so a truncated, corrupted or
swapped weights file is refused before it is parsed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError
from safetensors import SafetensorError

from training.errors import ArtifactError

if TYPE_CHECKING:
    import torch

__all__ = [
    "ARTIFACT_FORMAT",
    "ArtifactHeader",
    "load_artifact",
    "package_versions",
    "save_artifact",
]

logger = logging.getLogger(__name__)
ARTIFACT_FORMAT = "sanitas-generator"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class ArtifactHeader(BaseModel):
    """The fields every artifact config has, whatever the generator."""

    model_config = ConfigDict(extra="allow")

    format: str
    format_version: int
    generator: str
    weights_sha256: str


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("sanitas", "torch", "opacus", "pytorch-lightning", "pandas", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def save_artifact(
    directory: Path, *, config: dict[str, Any], state: dict[str, torch.Tensor]
) -> Path:
    """Write weights then config (the config last, so a half-written artifact has none)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS_FILE
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(weights))
    header = {
        "format": ARTIFACT_FORMAT,
        "format_version": FORMAT_VERSION,
        "weights_sha256": _sha256(weights),
        "versions": package_versions(),
    }
    tmp = directory / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps({**header, **config}, indent=2, default=str))
    tmp.replace(directory / CONFIG_FILE)
    logger.info("saved artifact to %s", directory)
    return directory


def load_artifact(directory: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and check an artifact; raise ``ArtifactError`` naming what is wrong."""
    from safetensors.torch import load_file

    directory = Path(directory)
    config = read_config(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ArtifactError(f"{directory} is not an artifact: needs {WEIGHTS_FILE}")
    header = ArtifactHeader.model_validate(config)
    digest = _sha256(weights)
    if digest != header.weights_sha256:
        raise ArtifactError(
            f"{weights} is corrupted or truncated: sha256={digest[:12]}..., "
            f"config expects {header.weights_sha256[:12]}..."
        )
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise ArtifactError(f"{weights} is not a safetensors file: {e}") from e
    return config, state


def read_config(directory: Path) -> dict[str, Any]:
    """An artifact's config (privacy accounting, schema, training record), weights unread.

    Needs no torch: the evaluation side reads models' accounting through this.
    """
    config_path = Path(directory) / CONFIG_FILE
    if not config_path.is_file():
        raise ArtifactError(f"{directory} is not an artifact: needs {CONFIG_FILE}")
    try:
        config = json.loads(config_path.read_text())
        header = ArtifactHeader.model_validate(config)
    except (json.JSONDecodeError, UnicodeDecodeError, ValidationError) as e:
        raise ArtifactError(f"{config_path} is not a valid artifact config: {e}") from e
    if header.format != ARTIFACT_FORMAT:
        raise ArtifactError(f"format={header.format!r}; expected {ARTIFACT_FORMAT!r}")
    if header.format_version > FORMAT_VERSION:
        raise ArtifactError(
            f"format_version={header.format_version} is newer than this Sanitas reads "
            f"({FORMAT_VERSION})"
        )
    return config


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
