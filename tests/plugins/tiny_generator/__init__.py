"""A generator added from outside Sanitas: one folder and one registry entry.

tiny-marginals learns each column's distribution on its own (one logit vector per
column) under the same DP pipeline as every generator. It exists to prove that adding
a generator touches no file of Sanitas: ``SANITAS_GENERATOR_PLUGINS=tiny_generator``
(with this folder's parent on ``PYTHONPATH``) makes it trainable, loadable and
samplable through the CLI and the API. This module is imported by the API process
too, so it imports no torch: the artifact and the recipe load lazily.
"""

from training.registry import GeneratorEntry, register

NAME = "tiny-marginals"

register(
    GeneratorEntry(
        name=NAME,
        modality="table",
        likelihood=False,
        package="tiny_generator.model",
        clipping="ghost",
        ddp_clipping=None,
        summary="independent column marginals (a test)",
    )
)
