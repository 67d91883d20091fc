"""Differential-privacy building blocks: numpy mechanisms and the Opacus facade."""

__all__: list[str] = []
