"""Cost of one Hessian-vector product relative to one gradient (JAX and torch double-backward).

MLP 784→128→10 on 2,048 Fashion-MNIST images, float32, CPU. Our HVP is forward over
reverse (``jvp`` of ``grad``), recomputing the forward pass each call; PyHessian's is
a second backward through a retained gradient graph (the forward and first backward
are paid once, outside the timing). Both are timed per call after a warm-up; JAX
compile time is excluded and reported separately.
"""

from __future__ import annotations

import time

from benchmarks import _curvature_common as common


def run(*, quick: bool = False) -> dict:
    import jax
    import torch

    from hgcnet_jax import curvature as cv

    n = 512 if quick else common.N_IMAGES
    repeats = 5 if quick else 30
    x, y = common.fashion_mnist(n)
    model, crit, (xt, yt) = common.torch_mlp(x, y, train_steps=5)
    params = common.jax_params(model)
    loss = common.make_loss(x, y)
    v = jax.tree_util.tree_map(lambda a: jax.random.normal(jax.random.key(0), a.shape, a.dtype), params)

    t0 = time.perf_counter()
    grad = jax.jit(jax.grad(loss)).lower(params).compile()
    c_grad = time.perf_counter() - t0
    t0 = time.perf_counter()
    hvp = jax.jit(lambda p, u: cv.hvp(loss, p, u)).lower(params, v).compile()
    c_hvp = time.perf_counter() - t0
    t_grad, _ = common.timeit(lambda: jax.block_until_ready(grad(params)), repeats=repeats)
    t_hvp, _ = common.timeit(lambda: jax.block_until_ready(hvp(params, v)), repeats=repeats)

    ps = list(model.parameters())

    def torch_grad():
        return torch.autograd.grad(crit(model(xt), yt), ps)

    g = torch.autograd.grad(crit(model(xt), yt), ps, create_graph=True)
    vt = [torch.randn_like(p) for p in ps]

    def torch_hvp():
        return torch.autograd.grad(g, ps, grad_outputs=vt, retain_graph=True)

    t_tgrad, _ = common.timeit(torch_grad, repeats=repeats)
    t_thvp, _ = common.timeit(torch_hvp, repeats=repeats)
    figures = {
        "num_images": n,
        "jax_grad_ms": 1e3 * t_grad,
        "jax_hvp_ms": 1e3 * t_hvp,
        "jax_hvp_over_grad": t_hvp / t_grad,
        "jax_grad_compile_s": c_grad,
        "jax_hvp_compile_s": c_hvp,
        "torch_grad_ms": 1e3 * t_tgrad,
        "torch_hvp_retained_graph_ms": 1e3 * t_thvp,
        "torch_hvp_over_grad": t_thvp / t_tgrad,
    }
    summary = (
        f"one HVP = {t_hvp / t_grad:.2f}x one gradient in JAX ({1e3 * t_hvp:.1f} vs {1e3 * t_grad:.1f} ms); "
        f"torch double-backward HVP on a retained graph {t_thvp / t_tgrad:.2f}x its gradient "
        f"({1e3 * t_thvp:.1f} vs {1e3 * t_tgrad:.1f} ms)"
    )
    return {"title": "HVP cost relative to a gradient (MLP, CPU)", "figures": figures, "summary": summary}
