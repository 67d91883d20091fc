"""Per-row clipped gradients in one backward pass ("book-keeping", Bu et al. 2023).

Opacus' ghost clipping runs two backward passes: one for the per-row gradient norms,
one more for the loss reweighted by the clipping factors. For the layers our table
networks use (Embedding, Linear and LayerNorm on one row vector each) a row's weight
gradient is built from two things a single pass already has: the layer's input and
the gradient at its output. So one pass asks autograd for the output gradients only
(no weight gradients), the norms follow from them, and each clipped sum is one
weighted product, the weight gradient the second pass would have recomputed.

The clipped sum is left in ``p.grad``, exactly what Opacus'
``DPOptimizerFastGradientClipping`` expects after ghost clipping: it adds the noise,
scales and steps, and its hook drives the accountant as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from training.errors import PrivacyConfigError

__all__ = ["BookkeepingClipper", "supports"]

SUPPORTED = (nn.Linear, nn.Embedding, nn.LayerNorm)


def supports(module: nn.Module) -> bool:
    """Whether every trainable parameter sits in a layer this clipper knows."""
    for layer in module.modules():
        own = [p for p in layer.parameters(recurse=False) if p.requires_grad]
        if own and not isinstance(layer, SUPPORTED):
            return False
        if isinstance(layer, nn.Embedding) and (
            layer.padding_idx is not None or layer.max_norm is not None
            or layer.scale_grad_by_freq or layer.sparse
        ):  # fmt: skip
            return False  # each changes the gradient the formulas below assume
    return True


@dataclass
class _Record:
    layer: nn.Module
    inputs: list[torch.Tensor] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)


class BookkeepingClipper:
    """Hooks on ``module``'s layers; ``backward`` leaves each clipped sum in ``p.grad``."""

    def __init__(self, module: nn.Module, *, max_grad_norm: float) -> None:
        if not supports(module):
            raise PrivacyConfigError(
                "bookkeeping clipping supports Linear, Embedding and LayerNorm layers only"
            )
        self.max_grad_norm = max_grad_norm
        self.records: list[_Record] = []
        self.last_norms: torch.Tensor | None = None
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        for layer in module.modules():
            if isinstance(layer, SUPPORTED) and any(p.requires_grad for p in layer.parameters()):
                record = _Record(layer)
                self.records.append(record)
                self._handles.append(layer.register_forward_hook(self._capture(record)))

    def close(self) -> None:
        """Unhook the layers: the trained network goes on without capturing inputs."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._clear()

    @staticmethod
    def _capture(record: _Record):  # type: ignore[no-untyped-def]
        def hook(layer: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            if torch.is_grad_enabled():
                record.inputs.append(_layer_input(layer, args[0].detach()))
                record.outputs.append(output)

        return hook

    def backward(self, loss_per_row: torch.Tensor) -> None:
        """Clip each row's gradient of ``loss_per_row`` to the norm; sum into ``p.grad``."""
        records = [r for r in self.records if r.outputs]
        if any(len(r.outputs) != 1 for r in records):
            self._clear()
            raise PrivacyConfigError("a layer ran twice in one step: its rows cannot be clipped")
        outputs = [r.outputs[0] for r in records]
        grads = torch.autograd.grad(loss_per_row.sum(), outputs, allow_unused=True)
        parts = []
        for record, grad in zip(records, grads, strict=True):
            if grad is not None:
                parts.append(_squared_norms(record.layer, record.inputs[0], grad))
        norms = torch.stack(parts).sum(0).sqrt()  # (B,)
        self.last_norms = norms
        scale = (self.max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
        for record, grad in zip(records, grads, strict=True):
            if grad is not None:
                _clipped_sum(record.layer, record.inputs[0], grad, scale)
        self._clear()

    def _clear(self) -> None:
        for record in self.records:
            record.inputs.clear()
            record.outputs.clear()


def _layer_input(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What the gradient formulas need of the input: a LayerNorm's weight multiplies
    the normalized input, so that is kept, computed once for both the norms and the
    sum."""
    if isinstance(layer, nn.LayerNorm):
        return F.layer_norm(x, layer.normalized_shape, eps=layer.eps)
    return x


def _squared_norms(layer: nn.Module, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Each row's squared gradient norm over the layer's parameters.  -> (B,)"""
    if isinstance(layer, nn.Linear):
        _rows_only(layer, x)
        total = x.square().sum(1) * g.square().sum(1)  # rank one: |g_i a_i^T|^2
        return total + g.square().sum(1) if layer.bias is not None else total
    if isinstance(layer, nn.LayerNorm):
        _rows_only(layer, x)
        total = (g * x).square().sum(1)  # x: the normalized input
        return total + g.square().sum(1) if layer.bias is not None else total
    # Embedding: positions of one row that share a token add their gradients first
    same = (x.unsqueeze(2) == x.unsqueeze(1)).to(g.dtype)  # (B, C, C)
    return torch.einsum("bij,bie,bje->b", same, g, g)


def _clipped_sum(layer: nn.Module, x: torch.Tensor, g: torch.Tensor, scale: torch.Tensor) -> None:
    gs = g * scale.view(-1, *([1] * (g.dim() - 1)))
    if isinstance(layer, nn.Linear):
        _set_grad(layer.weight, gs.T @ x)
        if layer.bias is not None:
            _set_grad(layer.bias, gs.sum(0))
    elif isinstance(layer, nn.LayerNorm):
        if layer.weight is not None:
            _set_grad(layer.weight, (gs * x).sum(0))
        if layer.bias is not None:
            _set_grad(layer.bias, gs.sum(0))
    else:
        assert isinstance(layer, nn.Embedding)
        weight = torch.zeros_like(layer.weight)
        weight.index_add_(0, x.reshape(-1), gs.reshape(-1, gs.shape[-1]))
        _set_grad(layer.weight, weight)


def _set_grad(param: torch.Tensor, grad: torch.Tensor) -> None:
    # each parameter belongs to one layer that ran once: the step's gradient is this one
    param.grad = grad


def _rows_only(layer: nn.Module, x: torch.Tensor) -> None:
    if x.dim() != 2:
        raise PrivacyConfigError(
            f"bookkeeping clipping needs one vector per row at {type(layer).__name__}; "
            f"got input of shape {tuple(x.shape)}"
        )
