"""Network definitions, one file per architecture; no data, logging, Lightning or Opacus."""

from training.models.tabular_ar import TabularAR, TabularARConfig

__all__ = ["TabularAR", "TabularARConfig"]
