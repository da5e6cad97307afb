"""Run under torchrun by test_prior_ddp.py: a few DDP training steps on the shared tiny setup."""

import sys

import torch

from padis3d.training.loop import init_distributed, new_state, train
from tests.prior.prior_helpers import ddp_setup

torch.set_num_threads(1)
init_distributed()
cfg, sampler, s = ddp_setup()
train(new_state(cfg, s), sampler, s, sys.argv[1], {"source": "synthetic"})
torch.distributed.destroy_process_group()
