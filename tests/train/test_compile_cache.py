"""The sweep's compiled programs are keyed on a Task's structure, never on the Task object."""

import gc
import importlib
import weakref

import chex
import jax
import pandas as pd
import pytest

from hgcnet_jax.train import Budget, Intervention, TaskSpec, make_task, sweep

sweep_module = importlib.import_module("hgcnet_jax.train.sweep")  # the name `sweep` is the function

BUDGET = Budget(steps=3)
KEY = jax.random.key(0)
RUNS = [Intervention(batch_size=24, lr=0.05)]


def _cache_sizes():
    return sweep_module._compiled._cache_size(), sweep_module._init_carry_jit._cache_size()


def _numeric(df):
    return df.drop(columns=["wall_time_s", "bucket_wall_time_s", "bucket_compile_time_s"])


def test_two_tasks_of_the_same_model_and_data_compile_the_sweep_once(tiny_graph, monkeypatch):
    # hidden=5: a model no other test sweeps, so the first sweep below is the one that compiles
    first = sweep(make_task(tiny_graph, "gcn", hidden=5), RUNS, BUDGET, key=KEY, progress=False)
    sizes = _cache_sizes()
    traces = []
    real = sweep_module.TaskSpec.split_metrics
    monkeypatch.setattr(sweep_module.TaskSpec, "split_metrics", lambda *a, **k: traces.append(1) or real(*a, **k))
    second_task = make_task(tiny_graph, "gcn", hidden=5)
    assert second_task.spec == first.task.spec and hash(second_task.spec) == hash(first.task.spec)
    second = sweep(second_task, RUNS, BUDGET, key=KEY, progress=False)
    assert traces == []  # the program was not traced again ...
    assert _cache_sizes() == sizes  # ... nor compiled again
    # the first sweep paid the compilation and reports it on its own; the second paid none
    assert first.runs.bucket_compile_time_s.iloc[0] > 0 and second.runs.bucket_compile_time_s.iloc[0] == 0.0
    assert (first.runs.bucket_wall_time_s >= 0).all()
    pd.testing.assert_frame_equal(_numeric(first.runs), _numeric(second.runs))
    chex.assert_trees_all_equal(first.params(0), second.params(0))
    # another model is another program: the counter sees it
    sweep(make_task(tiny_graph, "gcn", hidden=6), RUNS, BUDGET, key=KEY, progress=False)
    assert traces and _cache_sizes()[0] == sizes[0] + 1


def test_a_task_and_its_device_data_are_freed_after_its_sweep(tiny_graph):
    task = make_task(tiny_graph, "gcn", hidden=5)
    result = sweep(task, RUNS, BUDGET, key=KEY, progress=False)
    refs = [weakref.ref(task), weakref.ref(task.data["y"])]
    del task, result
    gc.collect()
    assert [r() for r in refs] == [None, None]


def test_spec_is_a_value_and_lists_of_model_keywords_hash(digits):
    a = make_task(digits, "mlp", hidden=[8])
    b = make_task(digits, "mlp", hidden=(8,))
    assert isinstance(a.spec, TaskSpec) and a.spec == b.spec
    assert a.model_kwargs["hidden"] == [8]  # what the caller gave is kept as given
    assert a.spec != make_task(digits, "mlp", hidden=(9,)).spec
    with pytest.raises(TypeError, match="hashable"):
        make_task(digits, "mlp", hidden={"width": 8})
