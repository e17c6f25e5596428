"""StudyConfig: defaults, validation naming the field, TOML/YAML files, overrides, fingerprints."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from hgcnet_jax.config import ConfigError, StudyConfig, TrainConfig, load_config


def test_defaults_are_valid_and_round_trip_through_toml(tmp_path):
    c = StudyConfig()
    assert c.train.batch_sizes == (16, 32, 64, 128, 256)
    assert c.current == 256 and c.current_batch_size is None
    p = tmp_path / "c.toml"
    p.write_text(c.to_toml())
    assert load_config(p) == c
    c2 = c.override({"data.options.num_nodes": 300, "model.options.hidden": 8, "current_batch_size": 32})
    p.write_text(c2.to_toml())
    assert load_config(p) == c2 and load_config(p).fingerprint() == c2.fingerprint()


def test_yaml_file_is_read_with_safe_load(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  batch_sizes: [8, 64]\n  seeds: 3\ncausal:\n  num_samples: 50\n")
    c = load_config(p)
    assert c.train.batch_sizes == (8, 64) and c.train.seeds == 3 and c.causal.num_samples == 50
    p.write_text("train: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="<file>.*invalid YAML"):
        load_config(p)


@pytest.mark.parametrize(
    "updates, field",
    [
        ({"train.epochs": 0}, "train.epochs"),
        ({"train.epochs": 2.5}, "train.epochs"),
        ({"train.lr": -1.0}, "train.lr"),
        ({"train.lr": float("nan")}, "train.lr"),
        ({"train.batch_sizes": [32]}, "train.batch_sizes"),
        ({"train.batch_sizes": [16, 16, 32]}, "train.batch_sizes"),
        ({"train.batch_sizes": [16, 0]}, "train.batch_sizes[1]"),
        ({"train.optimizer": "adamw"}, "train.optimizer"),
        ({"train.momentum": 0.9}, "train.momentum"),
        ({"train.lr_scaling": "none"}, "train.lr_scaling"),
        ({"train.seeds": 1}, "train.seeds"),
        ({"mediators.noise": "sharp_lambda_max"}, "mediators.noise"),
        ({"causal.method": "hmc"}, "causal.method"),
        ({"causal.credible_mass": 1.0}, "causal.credible_mass"),
        ({"current_batch_size": 100}, "current_batch_size"),
        ({"seed": -1}, "seed"),
        ({"data.name": ""}, "data.name"),
        ({"train.epoch": 3}, "train.epoch"),
        ({"trian.epochs": 3}, "trian.epochs"),
    ],
)
def test_invalid_values_name_the_field(updates, field):
    with pytest.raises(ConfigError) as e:
        StudyConfig().override(updates)
    assert e.value.field == field
    assert str(e.value).startswith(f"{field}: ")


def test_unknown_fields_in_a_file_suggest_the_known_name(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[train]\nbatch_size = [16, 32]\n")
    with pytest.raises(ConfigError, match=r"train\.batch_size: unknown configuration field \(did you mean 'batch_sizes'\?\)"):
        load_config(p)
    p.write_text("[train\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(p)
    p2 = tmp_path / "c.json"
    p2.write_text("{}")
    with pytest.raises(ConfigError, match="unknown config format"):
        load_config(p2)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.toml")


def test_configs_are_frozen_and_options_read_only():
    c = StudyConfig().override({"data.options.num_nodes": 300})
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.seed = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        c.data.options["num_nodes"] = 5  # type: ignore[index]
    assert copy.deepcopy(c) == c and hash(copy.deepcopy(c)) == hash(c)


def test_batch_sizes_are_sorted_and_fingerprint_tracks_every_field():
    assert TrainConfig(batch_sizes=(64, 16, 32)).batch_sizes == (16, 32, 64)
    base = StudyConfig()
    assert base.fingerprint() == StudyConfig().fingerprint()
    changed = {
        "train.epochs": 7, "train.lr": 0.01, "data.name": "digits", "model.options.hidden": 4,
        "causal.num_samples": 123, "mediators.complexity": "complexity_l2", "seed": 1,
    }
    prints = {base.fingerprint()}
    for k, v in changed.items():
        other = base.override({k: v})
        assert base.diff(other) == [k]
        prints.add(other.fingerprint())
    assert len(prints) == len(changed) + 1


def test_memory_knobs_of_the_measurement_do_not_change_the_fingerprint():
    base = StudyConfig()
    knobs = base.override({"mediators.options.runs_per_call": 4, "mediators.options.chunk_size": 64})
    assert knobs != base and knobs.fingerprint() == base.fingerprint()
    assert base.override({"mediators.options.num_examples": 64}).fingerprint() != base.fingerprint()
