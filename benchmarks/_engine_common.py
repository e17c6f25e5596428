"""Shared pieces of the engine benchmarks: Cora for JAX and for PyG, and timers."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

if "jax" not in sys.modules:
    # One XLA host device per core, so a bucket can be sharded over the cores
    # (the engine's replica mesh). Single runs and peers are unaffected: they use
    # device 0 (torch its own intra-op threads). Must happen before JAX starts.
    _flag = f"--xla_force_host_platform_device_count={os.cpu_count() or 1}"
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()


def host_mesh():
    """A 1-D replica mesh over every host device, or ``None`` when there is only one."""
    import jax

    from hgcnet_jax.train import make_mesh

    return make_mesh() if jax.device_count() > 1 else None


def data_root() -> str:
    env = os.environ.get("HGCNET_DATA_DIR")
    if env:
        return env
    return str(REPO.parent / "shared" / "data")


def jax_cora(split: str | None = None):
    from hgcnet_jax import data

    kw = {"split": split} if split else {}
    return data.load("cora", root=data_root(), normalize_features=True, **kw)


def pyg_cora(split: str = "public"):
    """PyG's Planetoid reading the same raw Planetoid files offline (symlinked into a temp root)."""
    import torch_geometric.transforms as T
    from torch_geometric.datasets import Planetoid

    root = Path(tempfile.mkdtemp(prefix="pyg-cora-"))
    raw = root / "Cora" / "raw"
    raw.mkdir(parents=True)
    src = Path(data_root()) / "planetoid"
    for f in src.glob("ind.cora.*"):
        (raw / f.name).symlink_to(f)
    return Planetoid(str(root), "Cora", split=split, transform=T.NormalizeFeatures())[0]


def pyg_gcn(num_features: int, num_classes: int):
    import torch
    from torch_geometric.nn import GCNConv

    class GCN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = GCNConv(num_features, 16, cached=True)
            self.conv2 = GCNConv(16, num_classes, cached=True)

        def forward(self, x, edge_index):
            x = torch.nn.functional.dropout(x, p=0.5, training=self.training)
            x = self.conv1(x, edge_index).relu()
            x = torch.nn.functional.dropout(x, p=0.5, training=self.training)
            return self.conv2(x, edge_index)

    return GCN()


def pyg_train(data, *, seed: int, epochs: int, batch_size: int | None = None, max_steps: int | None = None):
    """One PyG GCN run as a PyG user writes it (Kipf's recipe; mini-batches of labelled nodes if
    ``batch_size``). Returns (wall seconds, steps taken, test accuracy)."""
    import torch

    torch.manual_seed(seed)
    model = pyg_gcn(data.num_features, int(data.y.max()) + 1)
    opt = torch.optim.Adam(
        [dict(params=model.conv1.parameters(), weight_decay=5e-4), dict(params=model.conv2.parameters(), weight_decay=0)],
        lr=0.01,
    )
    train_idx = data.train_mask.nonzero().view(-1)
    steps = 0
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        if batch_size is None:
            batches = [train_idx]
        else:
            perm = train_idx[torch.randperm(len(train_idx))]
            nb = len(train_idx) // batch_size
            batches = [perm[i * batch_size : (i + 1) * batch_size] for i in range(nb)]
        for b in batches:
            opt.zero_grad()
            out = model(data.x, data.edge_index)
            loss = torch.nn.functional.cross_entropy(out[b], data.y[b])
            loss.backward()
            opt.step()
            steps += 1
            if max_steps is not None and steps >= max_steps:
                break
        if max_steps is not None and steps >= max_steps:
            break
    wall = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        pred = model(data.x, data.edge_index).argmax(-1)
        acc = float((pred[data.test_mask] == data.y[data.test_mask]).float().mean())
    return wall, steps, acc


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out
