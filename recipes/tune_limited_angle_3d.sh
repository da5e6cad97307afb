#!/usr/bin/env bash
# Tuning of the limited-angle 3D settings on training slices 88-99 (never the test block):
# CG steps of the data step and TV along z (λ). One row per folder; the
# tables are concatenated into OUT/tables.md. Each run takes 10-20 min on one thread.
# Results and conclusions: results/tune_limited_angle_3d.md.
#   bash recipes/tune_limited_angle_3d.sh [OUT]      (default outputs/tune_limited_angle_3d)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-outputs/tune_limited_angle_3d}
la3d() { python recipes/limited_angle_3d.py --block 88 100 --threads 1 --no-progress "$@"; }
la3d --rows "slab prior" "slab prior + TV along z" --cg-iters 5 --tv-z 0.02 --out "$OUT/cg5_tvz0.02"
la3d --rows "slab prior + TV along z" --cg-iters 5 --tv-z 0.005 --out "$OUT/cg5_tvz0.005"
la3d --rows "slab prior" --cg-iters 15 --out "$OUT/cg15"
la3d --rows "slab prior" --cg-iters 30 --out "$OUT/cg30"
la3d --rows "slab prior" --cg-iters 60 --out "$OUT/cg60"
la3d --rows "slab prior" --cg-iters 120 --out "$OUT/cg120"
la3d --rows "2D patch prior, slice by slice" --cg-iters 5 --out "$OUT/p2d_cg5"
la3d --rows "2D patch prior, slice by slice" --cg-iters 15 --out "$OUT/p2d_cg15"
for d in cg5_tvz0.02 cg5_tvz0.005 cg15 cg30 cg60 cg120 p2d_cg5 p2d_cg15; do
  echo "## $d"; cat "$OUT/$d/table.md"; echo
done > "$OUT/tables.md"
cat "$OUT/tables.md"
