"""Out-of-core volume reconstruction: the resumable band runner over zarr (:mod:`.runner`) and
the stages around it: input normalisation, measurements, baseline (:mod:`.pipeline`)."""

from padis3d.volume.runner import VolumeRun, VolumeSettings

__all__ = ["VolumeRun", "VolumeSettings"]
