"""Wire format of the training job: what to train and with which privacy guarantee.

Pydantic and the standard library only, so the service can build and validate a spec
without importing torch. Privacy settings (``DPConfig``) are frozen and kept apart
from performance flags, which cannot change the guarantee.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from training import registry

__all__ = [
    "DEFAULT_DELTA",
    "DPConfig",
    "Delta",
    "Epochs",
    "Epsilon",
    "FitSummary",
    "GeneratorName",
    "PrivacyReport",
    "Share",
    "TrainSpec",
]


def _registered(name: str) -> str:
    registry.entry(name)  # UnknownGenerator, a ValueError: pydantic reports it
    return name


def _generator_enum(schema: dict[str, Any]) -> None:
    """The registry's generators, read when the schema is built (plugins included)."""
    known = registry.entries()
    schema["enum"] = [e.name for e in known]
    schema["description"] = "; ".join(f"{e.name} ({e.modality}): {e.summary}" for e in known)


# a generator the registry knows; the JSON schema lists them
GeneratorName = Annotated[
    str, AfterValidator(_registered), Field(json_schema_extra=_generator_enum)
]
Accountant = Literal["prv", "rdp"]
GradSampleMode = Literal["bookkeeping", "ghost", "hooks", "functorch", "ew"]

DEFAULT_DELTA = 1e-5

# The bounds a request is checked against, here once: the API's job and schedule bodies
# use these same types, so nothing it accepts can fail validation in the job's child.
Epsilon = Annotated[float, Field(gt=0, le=100)]
Delta = Annotated[float, Field(gt=0, lt=0.01)]
Share = Annotated[float, Field(ge=0, lt=1)]
Epochs = Annotated[int, Field(ge=1, le=10_000)]


# the planner's rule (training.budget.shares) gives preprocessing at least this much
MIN_RULE_PREPROCESSING_SHARE = 0.1
# Shares of epsilon are what each part costs alone; Gaussian releases compose in about
# the squares of their epsilons (1/z^2), so asked shares whose squares sum to this leave
# DP-SGD under a tenth of what the run spends
SHARES_SQUARED_CAP = 0.9


class DPConfig(BaseModel):
    """The privacy guarantee a run must keep, end to end.

    ``epsilon=None`` trains without differential privacy (for comparison only); the
    artifact then says ``dp: false`` and no epsilon is ever shown for it.

    Notes:
        ``preprocessing_share`` is the part of epsilon given to learning the encoders
        (bounds, quantile bins, category domains) that the owner did not declare
        public. The training noise is then solved so that preprocessing and DP-SGD
        *composed* stay within ``epsilon``; the split is recorded on the artifact.
        ``calibration_share`` (tables only) buys DP-measured 1- and 2-way marginals
        that the trained generator is tilted onto (see ``training.calibration``);
        0 turns calibration off. Either share left unset is chosen when the run is
        planned, from public facts only (``training.budget.shares``): the more of a
        table's metadata must be learned under DP, the more preprocessing gets, and
        calibration gets what preprocessing leaves of all but 0.15 of the budget
        (counted as the accountant adds releases up: in 1/z^2, not in epsilon).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    epsilon: Epsilon | None = 1.0
    delta: Delta = DEFAULT_DELTA
    max_grad_norm: float = Field(default=1.0, gt=0, le=100)
    preprocessing_share: float | None = Field(default=None, gt=0, lt=1)
    calibration_share: Share | None = None
    accountant: Accountant = "prv"

    @model_validator(mode="after")
    def _shares_leave_training_some(self) -> DPConfig:
        # an unset preprocessing share is the rule's, at least MIN_RULE_PREPROCESSING_SHARE
        preprocessing = self.preprocessing_share or MIN_RULE_PREPROCESSING_SHARE
        calibration = self.calibration_share or 0.0
        if preprocessing**2 + calibration**2 >= SHARES_SQUARED_CAP:
            raise ValueError(
                f"preprocessing_share={self.preprocessing_share or 'by rule, at least 0.1'} "
                f"and calibration_share={self.calibration_share} leave DP-SGD less than a "
                "tenth of the privacy budget (each share is what its part costs alone; "
                "parts compose in about the squares of their shares)"
            )
        return self

    @property
    def enabled(self) -> bool:
        return self.epsilon is not None

    @classmethod
    def requested(
        cls, *, epsilon: float | None, delta: float, calibration_share: float | None = None
    ) -> DPConfig:
        """The guarantee a request asks for; a share it leaves unset is planned by rule.

        The API validates a job with this and the job's child trains with it, so the
        two cannot disagree on what a request means.
        """
        return cls(epsilon=epsilon, delta=delta, calibration_share=calibration_share)


class TrainSpec(BaseModel):
    """What to train. Everything but ``dp`` is a performance or quality knob."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    generator: GeneratorName = Field(default_factory=lambda: registry.default_generator("table"))
    dp: DPConfig = Field(default_factory=DPConfig)
    epochs: Epochs | None = None
    batch_size: int | None = Field(default=None, ge=8, le=1_000_000)
    learning_rate: float | None = Field(default=None, gt=0, le=1)
    max_bins: int = Field(default=32, ge=2, le=256)
    levels: int = Field(default=16, ge=2, le=256)  # image intensity levels (public)
    hidden_size: int | None = Field(default=None, ge=8, le=4096)  # None: by DP or not
    embedding_dim: int = Field(default=16, ge=2, le=256)
    depth: int | None = Field(default=None, ge=1, le=8)
    seed: int = 0
    accelerator: str = "auto"
    devices: int = Field(default=1, ge=1, le=64)  # DDP processes (one per GPU, or CPU)
    # None: the generator's own (its registry entry's clipping, in one process and under
    # DDP). bookkeeping is one backward pass instead of ghost's two
    grad_sample_mode: GradSampleMode | None = None
    min_rows: int = Field(default=50, ge=1)

    @model_validator(mode="after")
    def _distributed_runs_are_dp_sgd(self) -> TrainSpec:
        generator = registry.entry(self.generator)
        if self.devices > 1 and not generator.distributed:
            distributed = [e.name for e in registry.entries() if e.distributed]
            raise ValueError(
                f"devices={self.devices}: {self.generator} trains in one process; "
                f"DDP runs {', '.join(distributed)}"
            )
        if self.devices > 1 and not self.dp.enabled:
            raise ValueError(f"devices={self.devices}: DDP runs DP-SGD; --no-dp runs use one")
        if self.grad_sample_mode == "bookkeeping" and (
            generator.clipping != "bookkeeping" or self.devices > 1
        ):
            raise ValueError(
                f"grad_sample_mode='bookkeeping' does not clip {self.generator} with "
                f"devices={self.devices}: use ghost for other generators and under DDP"
            )
        return self


class PrivacyReport(BaseModel):
    """The privacy accounting of one trained model, as it was spent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dp: bool
    epsilon: float | None
    delta: float | None
    target_epsilon: float | None
    epsilon_preprocessing: float | None
    epsilon_training: float | None
    delta_partition_selection: float | None
    noise_multiplier: float | None
    preprocessing_noise_multiplier: float | None
    preprocessing_queries: int
    sample_rate: float | None
    steps: int
    max_grad_norm: float | None
    accountant: str | None
    public_metadata: list[str]
    private_metadata: list[str]
    # marginals measured after training to calibrate a table generator
    epsilon_calibration: float | None = None
    calibration_noise_multipliers: list[float] = Field(default_factory=list)
    calibration_pairs: list[list[str]] = Field(default_factory=list)


class FitSummary(BaseModel):
    """What the CLI and the job runner print after a fit."""

    model_config = ConfigDict(frozen=True)

    generator: str
    epsilon: float | None
    delta: float | None
    epsilon_preprocessing: float | None
    epsilon_training: float | None
    noise_multiplier: float | None
    sample_rate: float | None
    steps: int
    # each part alone, at delta; ``epsilon`` composes them (less than their sum)
    epsilon_calibration: float | None = None
    epochs: int
    batch_size: int
    fit_seconds: float
    columns: int
    artifact: str | None = None
