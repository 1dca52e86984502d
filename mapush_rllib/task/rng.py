"""Counter-based random numbers: every draw is a hash of (seed, env id, episode index, draw index).

Why not a torch.Generator: a generator's stream depends on how many envs share it, so env 3 of a batch of
256 would see different resets than the same env alone. Hashing makes each env's resets a function of its
global id and episode count only, so one batch of N envs, N single-env copies (RLlib's stock runner) and
several env runners with id offsets all produce identical episodes for the same seed.
"""

from __future__ import annotations

import torch

_MASK32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, constant: int) -> torch.Tensor:
    """(x * constant) mod 2^32 for int64 x < 2^32, without int64 overflow."""
    low, high = constant & 0xFFFF, constant >> 16
    return (x * low + (((x * high) & 0xFFFF) << 16)) & _MASK32


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """Chris Wellons' lowbias32 integer hash on int64 tensors holding 32-bit values."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def uniform(seed: int, env_ids: torch.Tensor, episode: torch.Tensor, num_draws: int) -> torch.Tensor:
    """(n, num_draws) floats in [0, 1), each a function of (seed, env id, episode, draw index) only.

    Args:
        seed: the experiment seed.
        env_ids: (n,) global env ids (int64).
        episode: (n,) per-env episode counters (int64).
        num_draws: how many numbers each env needs.
    """
    draws = torch.arange(num_draws, device=env_ids.device, dtype=torch.int64)
    h = _hash32(torch.full_like(env_ids, seed & _MASK32) ^ _hash32(env_ids.to(torch.int64) + 0x9E3779B9))
    h = _hash32(h[:, None] ^ _hash32(episode.to(torch.int64)[:, None] * 0x10001 + 0x85EBCA6B))
    h = _hash32(h ^ _hash32(draws[None, :] + 0xC2B2AE35))
    return h.to(torch.float64).div(2.0**32).to(torch.float32).clamp(max=1.0 - 2**-24)
