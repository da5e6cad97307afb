"""Training a prior: the patch sampler and default data (:mod:`.data`), the loop with EMA,
resume and DDP (:mod:`.loop`), and what is written next to a checkpoint (:mod:`.loss_plot`,
:mod:`.model_card`)."""
