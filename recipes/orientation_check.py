"""Does the prior see the slice it was trained on, whatever the file? One chest CT test slice
(120, 128², CT 20 views, DDS with the CLI defaults but the held-out choice, seeds 0 and 1) reconstructed by
``padis3d reconstruct`` from the same anatomy stored four ways: the shipped LAS NIfTI block, the
block reoriented to LPS and to RAS, and the slice saved as ``.npy`` in the training orientation.
Before issue 27 the NIfTI readers handed the prior a transposed, flipped slice (measured then:
31.65 / 31.48 dB from the NIfTI against 32.98 / 32.99 dB from the ``.npy``); now every row must
agree to float rounding. Writes ``OUT/table.md`` and ``OUT/results.json``.

    PYTHONPATH=. python recipes/orientation_check.py --out results/orientation_check
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

from padis3d.io.sample_data import chest_ct_path, chest_ct_volume_hu

Z0, Z1, SLICE = 116, 124, 120


def write_inputs(folder: Path) -> dict[str, Path]:
    """Slices ``Z0..Z1`` of the shipped chest CT as LAS (as shipped), LPS and RAS NIfTI, and slice
    ``SLICE`` as ``.npy`` in HU in the training orientation."""
    folder.mkdir(parents=True, exist_ok=True)
    shipped = nib.load(chest_ct_path())
    affine = shipped.affine.copy()
    affine[:3, 3] = affine[:3, :] @ [0, 0, Z0, 1]
    las = nib.Nifti1Image(np.asarray(shipped.dataobj[:, :, Z0:Z1], dtype=np.float32), affine)
    paths = {}
    for codes in ("LAS", "LPS", "RAS"):
        img = las.as_reoriented(ornt_transform(io_orientation(las.affine), axcodes2ornt(tuple(codes))))
        paths[f"NIfTI {codes}"] = folder / f"block_{codes}.nii.gz"
        nib.save(img, paths[f"NIfTI {codes}"])
    paths[".npy (training orientation)"] = folder / "slice.npy"
    np.save(paths[".npy (training orientation)"], chest_ct_volume_hu()[SLICE])
    return paths


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("results/orientation_check"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = p.parse_args(argv)
    paths = write_inputs(args.out / "inputs")
    rows = {}
    for name, path in paths.items():
        for seed in args.seeds:
            run = args.out / "runs" / f"{path.stem.split('.')[0]}_seed{seed}"
            cmd = [sys.executable, "-m", "padis3d.cli", "reconstruct", "--task", "ct", "--views", "20", "--sampler",
                   "dds", "--no-holdout-choice", "--input", str(path), "--window", "-1000", "1000", "--seed", str(seed),
                   "--threads", "1",
                   "--no-progress", "--out", str(run)]
            if path.suffix != ".npy":
                cmd += ["--slice", str(SLICE - Z0)]
            subprocess.run(cmd, check=True)
            report = json.loads((run / "report.json").read_text())
            rows.setdefault(name, {})[seed] = report["metrics"]["dds"]["psnr"]
    (args.out / "results.json").write_text(json.dumps({"command": "python recipes/orientation_check.py", "psnr_db": rows},
                                                      indent=1))
    lines = ["| input (chest CT slice 120, CT 20, DDS) | " + " | ".join(f"seed {s}" for s in args.seeds) + " |",
             "|---|" + "---|" * len(args.seeds)]
    lines += [f"| {name} | " + " | ".join(f"{v[s]:.2f}" for s in args.seeds) + " |" for name, v in rows.items()]
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
