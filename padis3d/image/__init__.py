"""2D reconstruction as a library call: the forward models of the 2D tasks (:mod:`.tasks`), the
reference slice and its prior (:mod:`.inputs`), the run (:mod:`.reconstruct`: ``padis3d.reconstruct_image``)
and the result written back in the input's format (:mod:`.output`)."""
