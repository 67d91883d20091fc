"""Sampling: the warm sampler pool, its forked children, the API's client and slots."""
