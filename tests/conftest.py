"""Shared test set-up: one torch thread (the machine has 2 shared cores), small sizes, reproducible MKL.

MKL's float matmul may round a row differently depending on where it sits in the batch. The runner and learner
tests compare paths bit for bit whose batches order agents as Python's set of agent ids does, which changes with
PYTHONHASHSEED (with seeds 2, 3 and 5 the shared-policy runner test failed on the last bit of actions). MKL's
strict conditional-reproducibility mode makes each row's result independent of its place; it must be set before
MKL's first call, hence here, before torch is imported.
"""

import os

os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

import torch  # noqa: E402

torch.set_num_threads(1)

NUM_AGENTS = 2
