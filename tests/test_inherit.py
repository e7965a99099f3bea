"""`base:` inheritance: deep merge, chains, and clear errors for unknown names and cycles."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from asymfusion.benchmark.config import ConfigError, load_params, resolve_run
from asymfusion.benchmark.config.inherit import deep_merge, resolve_experiments
from tests.engine_helpers import REPO


def test_mappings_merge_key_by_key_and_lists_replace() -> None:
    base = {"data": {"modalities": ["rgb", "depth"], "batch_size": 16}, "train": {"epochs": 8}}
    merged = deep_merge(base, {"data": {"modalities": ["rgb"]}, "train": {"threads": 2}})
    assert merged == {"data": {"modalities": ["rgb"], "batch_size": 16}, "train": {"epochs": 8, "threads": 2}}
    assert base["data"]["modalities"] == ["rgb", "depth"], "the base is not modified"


def test_bases_chain_through_recipes_and_experiments() -> None:
    raw = {"recipes": {"r": {"suite": "s", "train": {"epochs": 8}}, "r2": {"base": "r", "train": {"epochs": 2}}},
           "experiments": {"a": {"base": "r2", "model": {"method": "msbn"}},
                           "b": {"base": "a", "model": {"fusion": {"shift": False}}}}}
    out = resolve_experiments(raw)
    assert "recipes" not in out
    assert out["experiments"]["b"] == {"suite": "s", "train": {"epochs": 2},
                                       "model": {"method": "msbn", "fusion": {"shift": False}}}


@pytest.mark.parametrize("raw, message", [
    ({"experiments": {"a": {"base": "nope"}}}, "experiments.a.base: 'nope' is not defined"),
    ({"recipes": {"quick-seg": {}}, "experiments": {"a": {"base": "quick-sed"}}}, "did you mean quick-seg"),
    ({"experiments": {"a": {"base": "b"}, "b": {"base": "a"}}}, "inheritance cycle a -> b -> a"),
    ({"experiments": {"a": {"base": "a"}}}, "inheritance cycle a -> a"),
    ({"experiments": {"a": {"base": 3}}}, "must be the name of a recipe or an experiment"),
    ({"recipes": {"a": {}}, "experiments": {"a": {}}}, "share the name"),
    ({"recipes": {"r": {"base": "missing"}}, "experiments": {}}, "recipes.r.base: 'missing' is not defined"),
])
def test_bad_bases_are_named(raw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(">", ".")):
        resolve_experiments(raw)


def test_a_cycle_in_params_yaml_exits_through_config_error(tmp_path: Path) -> None:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["recipes"]["quick-seg"]["base"] = "quick-asymfusion"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="inheritance cycle"):
        load_params(path)


def test_the_ablations_inherit_everything_but_their_switch() -> None:
    params = load_params(REPO / "params.yaml")
    full, ablation = resolve_run(params, "quick-asymfusion-s0"), resolve_run(params, "quick-af-shift-only-s0")
    assert ablation.model.fusion["shuffle"] is False and full.model.fusion["shuffle"] is True
    assert ablation.model.model_dump(exclude={"fusion"}) == full.model.model_dump(exclude={"fusion"})
    assert ablation.optimiser == full.optimiser and ablation.data == full.data and ablation.train == full.train
