"""The PixelCNN's raster-scan causality, and the band trick its sampler relies on."""

import torch

from training.generators.image_ar.network import PixelCNN, PixelCNNConfig, receptive_rows


def _net(**kw) -> PixelCNN:
    torch.manual_seed(0)
    return PixelCNN(PixelCNNConfig(height=12, width=10, channels=2, levels=8, classes=3, **kw))


def test_each_pixel_depends_only_on_earlier_pixels_in_raster_order():
    net = _net(layers=3)
    levels = torch.randint(0, 8, (1, 2, 12, 10))
    x = levels.float().requires_grad_(True)
    cfg = net.config

    # differentiate through the input scaling: replace levels by a float leaf
    def logits_of(inp: torch.Tensor) -> torch.Tensor:
        scaled = inp / (cfg.levels - 1) * 2 - 1
        return net.forward_scaled(scaled, torch.tensor([1]))

    out = logits_of(x)
    for i, j in [(0, 0), (0, 5), (3, 0), (6, 4), (11, 9)]:
        (grad,) = torch.autograd.grad(out[0, :, :, i, j].sum(), x, retain_graph=True)
        seen = grad[0].abs().sum(0) > 0  # (H, W)
        rows, cols = torch.nonzero(seen, as_tuple=True)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            assert r < i or (r == i and c < j), f"pixel {(i, j)} sees {(r, c)}"
        if (i, j) != (0, 0):
            assert seen.any(), f"pixel {(i, j)} sees nothing"


def test_the_sampler_band_gives_the_full_image_logits():
    net = _net(layers=4)
    levels = torch.randint(0, 8, (3, 2, 12, 10))
    label = torch.tensor([0, 1, 2])
    full = net(levels, label)
    reach = receptive_rows(net.config)
    for i in range(12):
        top = max(0, i - reach + 1)
        band = net(levels[:, :, top : i + 1], label)
        assert torch.allclose(band[:, :, :, i - top], full[:, :, :, i], atol=1e-5), i
    shorter = max(0, 11 - reach + 2)  # one row less of context changes the last row
    cut = net(levels[:, :, shorter:], label)
    assert not torch.allclose(cut[:, :, :, -1], full[:, :, :, 11], atol=1e-5)
