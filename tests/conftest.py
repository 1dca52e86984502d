"""Shared test set-up: one torch thread (the machine has 2 shared cores), small sizes."""

import torch

torch.set_num_threads(1)

NUM_AGENTS = 2
