"""Benchmark: seconds per tile of the shipped 2D patch prior by tiles per network call, as
``--max-batch auto`` measures it (:func:`padis3d.priors.batch_size.measure_tile_batch`). Run by hand:

    OMP_NUM_THREADS=1 python benchmarks/tile_batch.py --out benchmarks/results/tile_batch.txt

One 128² slice is 9 tiles of 48² (batches 1, 2, 4, 8, 9); ``--size 256`` gives 36 tiles. Each
round measures every batch (one warm-up, ``--repeats`` timed calls, the fastest kept); rounds
are repeated so that background load shows as spread, and the median of the rounds is printed
with the choice each round made. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

# benchmarks/tiling.py is named like the package: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "chest128_patch.pt"


def main() -> None:
    from padis3d import load_prior
    from padis3d.priors.batch_size import measure_tile_batch
    from padis3d.priors.factory import patch_prior_from

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=str(CHECKPOINT))
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--precision", default="auto")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    loaded = load_prior(args.checkpoint, precision=args.precision)
    prior = patch_prior_from(loaded, (args.size, args.size))
    rounds = [measure_tile_batch(prior, None, loaded.device, repeats=args.repeats) for _ in range(args.rounds)]
    lines = [f"{Path(args.checkpoint).name} at {args.size}²: {prior.grid.num_tiles} tiles of "
             f"{'x'.join(map(str, prior.grid.tile))}, precision {loaded.precision}, {torch.get_num_threads()} "
             f"thread(s), torch.inference_mode; {args.rounds} rounds x {args.repeats} timed calls (fastest kept)",
             "batch  ms/tile (median of rounds)  per round"]
    for b in rounds[0].measured:
        per = [r.measured[b] * 1e3 for r in rounds]
        lines.append(f"{b:>5}  {statistics.median(per):8.2f}                   "
                     + " ".join(f"{v:.2f}" for v in per))
    lines.append("chosen per round: " + ", ".join(str(r.chosen) for r in rounds))
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
