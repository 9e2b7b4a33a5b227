"""How the version-1 network files in this folder were written (kept for the record).

Run once, with the whetstone of commit 3224a5e (format version 1), from the repository
root: ``.venv/bin/python tests/runtime/data/make_legacy.py``. It writes two networks
converted from small torch models with fixed seeds (``legacy_v1_cnn.npz``: Conv + BN,
SpikingBReLU, MaxPool over spikes, Flatten, Linear, SpikingBReLU, SoftmaxDecode;
``legacy_v1_dense.npz``: Flatten, Linear, SpikingBReLU, Linear + BN, SpikingBReLU, Linear)
and, per network, ``*_expected.npz``: fixed inputs ``x`` and what the version-1 runtime
computed from them in float64 (``out``; ``spikes_{k}`` for the k-th Threshold).
Those files are test data: the loader of any later version must read them and compute
the same values (tests/runtime/test_legacy_files.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from whetstone.conversion import to_spiking
from whetstone.nn import SoftmaxDecode, SpikingBReLU
from whetstone.runtime import run

HERE = Path(__file__).parent


def _sharp(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, SpikingBReLU):
            m.sharpness = 1.0
    return model.eval()


def _bn_stats(model: nn.Module, gen: torch.Generator) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1 + 0.3)


def main() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    key = (torch.rand(3, 8, generator=gen) < 0.5).float()
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), SpikingBReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 8),
                        SpikingBReLU(), SoftmaxDecode(key))
    dense = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), SpikingBReLU(), nn.Linear(12, 10),
                          nn.BatchNorm1d(10), SpikingBReLU(), nn.Linear(10, 4))
    for name, model, shape, gain in (("cnn", cnn, (1, 8, 8), 1.0),
                                     ("dense", dense, (16,), 6.0)):
        _bn_stats(model, gen)
        _sharp(model)
        x = (gain * torch.rand(6, *shape, generator=gen)).numpy()
        net = to_spiking(model, torch.as_tensor(x))
        net.save(HERE / f"legacy_v1_{name}.npz")
        out, spikes = run(net, x, record=True, dtype=np.float64)
        np.savez(HERE / f"legacy_v1_{name}_expected.npz", x=x, out=out,
                 **{f"spikes_{k}": s for k, s in enumerate(spikes)})


if __name__ == "__main__":
    main()
