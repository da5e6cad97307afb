"""Generic N-D tiling engine: partitions of a zero-padded canvas into tiles with a
random grid shift, streamed through a function in bounded batches, in memory or
over zarr/dask arrays on disk. Knows nothing of diffusion."""
