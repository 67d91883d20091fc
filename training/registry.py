"""The generator registry: the one place a generator is named.

Each entry says what the rest of Sanitas needs to know about a generator without
importing it: its modality, whether it has a likelihood that scores rows (an audit's
white-box attack; an autoregressive model has one) or only samples (a GAN), how its
DP-SGD clips per-row gradients in one process and under DDP, and its folder. The
folder holds the trained artifact (its ``__init__``: ``ARTIFACT``, the class that
samples, saves and loads) and the fit recipe (``recipe``: ``RECIPE``); both load
lazily, so the API process reads this module without torch. The spec's and the API's
generator enums, the CLI help, the default generator of a dataset and the audit's
choice of attack all come from here.

Adding a generator is one folder and one ``register`` call. A generator outside this
package is registered by a module named in ``SANITAS_GENERATOR_PLUGINS`` (commas
between modules): every process (the API, the job child, a sampler, a Celery worker)
imports those modules on its first look at the registry.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "PLUGINS_VARIABLE",
    "GeneratorEntry",
    "Modality",
    "UnknownGenerator",
    "default_generator",
    "entries",
    "entry",
    "modality_of",
    "names",
    "register",
]

Modality = Literal["table", "images"]
PLUGINS_VARIABLE = "SANITAS_GENERATOR_PLUGINS"


class UnknownGenerator(ValueError):
    """A generator name that no entry has (a ValueError, so pydantic reports it as 422)."""


@dataclass(frozen=True)
class GeneratorEntry:
    """One generator, as the spec, the API, the CLI, the fit pipeline and the audit see it.

    ``clipping``: Opacus' per-sample gradient mode in one process. ``ddp_clipping``: the
    mode under Lightning DDP, or None where the generator trains in one process only
    (a GAN steps two networks per batch). ``likelihood``: the artifact scores rows
    (``log_likelihood``: an autoregressive model); else an audit attacks its samples.
    """

    name: str
    modality: Modality
    likelihood: bool
    package: str  # the generator's folder, as a module path
    clipping: str
    ddp_clipping: str | None
    summary: str  # one line for the API's documentation (the generator enum)

    @property
    def distributed(self) -> bool:
        return self.ddp_clipping is not None

    def recipe(self) -> Any:
        """The fit recipe (``training.pipeline.recipe.Recipe``); imports torch and Lightning."""
        return importlib.import_module(f"{self.package}.recipe").RECIPE

    def artifact(self) -> Any:
        """The trained generator's class (sample, save, load); imports torch, not Lightning."""
        return importlib.import_module(self.package).ARTIFACT


_BUILT_IN = (
    GeneratorEntry(
        name="tabular-ar", modality="table", likelihood=True,
        package="training.generators.tabular_ar", clipping="bookkeeping", ddp_clipping="ghost",
        summary="any-order autoregressive network over a table's tokens",
    ),
    GeneratorEntry(
        name="tabular-gan", modality="table", likelihood=False,
        package="training.generators.tabular_gan", clipping="ghost", ddp_clipping=None,
        summary="conditional GAN over a table's tokens (DP discriminator)",
    ),
    GeneratorEntry(
        name="image-ar", modality="images", likelihood=True,
        package="training.generators.image_ar", clipping="hooks", ddp_clipping="hooks",
        summary="class-conditional PixelCNN over small images",
    ),
    GeneratorEntry(
        name="image-gan", modality="images", likelihood=False,
        package="training.generators.image_gan", clipping="hooks", ddp_clipping=None,
        summary="class-conditional DCGAN over small images (DP discriminator)",
    ),
)  # fmt: skip
# the generator a dataset of each modality trains with when a job names none
_DEFAULTS: dict[str, str] = {"table": "tabular-ar", "images": "image-ar"}


@dataclass
class _Registry:
    entries: dict[str, GeneratorEntry]
    plugins_loaded: str | None = None


_REGISTRY = _Registry({e.name: e for e in _BUILT_IN})


def register(new: GeneratorEntry) -> None:
    """Add a generator (a plugin module calls this when imported). Names are unique."""
    known = _REGISTRY.entries.get(new.name)
    if known is not None and known != new:
        raise ValueError(f"generator {new.name!r} is registered already")
    _REGISTRY.entries[new.name] = new


def _load_plugins() -> None:
    """Import the plugin modules named in the environment, once per distinct value."""
    wanted = os.environ.get(PLUGINS_VARIABLE, "")
    if wanted == _REGISTRY.plugins_loaded:
        return
    _REGISTRY.plugins_loaded = wanted
    for module in filter(None, (m.strip() for m in wanted.split(","))):
        importlib.import_module(module)


def entries() -> list[GeneratorEntry]:
    _load_plugins()
    return list(_REGISTRY.entries.values())


def names(modality: Modality | None = None) -> list[str]:
    return [e.name for e in entries() if modality is None or e.modality == modality]


def entry(name: str) -> GeneratorEntry:
    _load_plugins()
    try:
        return _REGISTRY.entries[name]
    except KeyError:
        raise UnknownGenerator(
            f"generator={name!r} is unknown; known: {', '.join(names())}"
        ) from None


def default_generator(modality: Modality) -> str:
    return _DEFAULTS[modality]


def modality_of(thing: Any) -> Modality:
    """What a dataset, a model or a generator name is about: ``"table"`` or ``"images"``.

    ``thing``: a stored dataset schema or an artifact's config (a mapping whose
    ``kind`` is ``"images"`` for images; a table's schema has columns, no kind), a
    trained generator (its ``name``), or a generator's name.
    """
    if isinstance(thing, str):
        return entry(thing).modality
    if isinstance(thing, dict):
        if "generator" in thing:
            return entry(str(thing["generator"])).modality
        return "images" if thing.get("kind") == "images" else "table"
    return entry(str(thing.name)).modality
