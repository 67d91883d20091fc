"""Generator registry: a plain dict from name to its fit function and loader class."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.artifacts import load_artifact
from training.errors import ArtifactError, TrainingError
from training.generators.image_ar import ImageARGenerator
from training.generators.image_gan import ImageGANGenerator
from training.generators.tabular_ar import TabularARGenerator
from training.generators.tabular_gan import TabularGANGenerator

__all__ = [
    "GENERATORS",
    "GeneratorEntry",
    "create_generator",
    "load_generator",
    "register_generator",
]


def _fit_tabular_ar(*args: Any, **kwargs: Any) -> Any:
    """Imports the Lightning/Opacus fit path only when a fit runs (samplers skip it)."""
    from training.generators.tabular_ar_fit import fit_tabular_ar

    return fit_tabular_ar(*args, **kwargs)


def _fit_tabular_gan(*args: Any, **kwargs: Any) -> Any:
    from training.generators.tabular_gan_fit import fit_tabular_gan

    return fit_tabular_gan(*args, **kwargs)


def _fit_image_ar(*args: Any, **kwargs: Any) -> Any:
    from training.generators.image_ar_fit import fit_image_ar

    return fit_image_ar(*args, **kwargs)


def _fit_image_gan(*args: Any, **kwargs: Any) -> Any:
    from training.generators.image_gan_fit import fit_image_gan

    return fit_image_gan(*args, **kwargs)


@dataclass(frozen=True)
class GeneratorEntry:
    fit: Callable[..., Any]
    load: Callable[[Path], Any]


GENERATORS: dict[str, GeneratorEntry] = {
    "tabular-ar": GeneratorEntry(fit=_fit_tabular_ar, load=TabularARGenerator.load),
    "tabular-gan": GeneratorEntry(fit=_fit_tabular_gan, load=TabularGANGenerator.load),
    "image-ar": GeneratorEntry(fit=_fit_image_ar, load=ImageARGenerator.load),
    "image-gan": GeneratorEntry(fit=_fit_image_gan, load=ImageGANGenerator.load),
}


def register_generator(name: str, entry: GeneratorEntry) -> None:
    GENERATORS[name] = entry


def create_generator(name: str) -> GeneratorEntry:
    try:
        return GENERATORS[name]
    except KeyError as e:
        raise TrainingError(f"generator={name!r} is unknown; known: {sorted(GENERATORS)}") from e


def load_generator(directory: str | Path) -> Any:
    """Load any artifact by the generator name recorded in its config."""
    config, _ = load_artifact(Path(directory))
    name = config.get("generator")
    if name not in GENERATORS:
        raise ArtifactError(f"generator={name!r} in {directory} is unknown")
    return GENERATORS[name].load(Path(directory))
