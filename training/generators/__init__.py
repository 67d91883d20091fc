"""Trained generators: one folder each (artifact, network, fit recipe), named in
``training.registry``; the bases their artifacts share; ``load_generator``."""

from __future__ import annotations

from pathlib import Path

from training.artifacts import read_config
from training.errors import ArtifactError
from training.protocol import TrainedGenerator
from training.registry import UnknownGenerator, entry

__all__ = ["TrainedGenerator", "load_generator"]


def load_generator(directory: str | Path) -> TrainedGenerator:
    """Load any artifact by the generator name recorded in its config (no pickle)."""
    name = read_config(Path(directory)).get("generator")
    try:
        artifact = entry(str(name)).artifact()
    except UnknownGenerator as e:
        raise ArtifactError(f"generator={name!r} in {directory} is unknown") from e
    model: TrainedGenerator = artifact.load(Path(directory))
    return model
