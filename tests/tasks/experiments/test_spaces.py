import pytest

from tasks.config.common import ConfigError, load_config
from tasks.config.experiments import ParameterSpec, SearchConfig
from tasks.experiments.search import make_pruner, make_sampler, prepare_study
from tasks.experiments.spaces import (
    SearchSpaceError,
    apply_overrides,
    check_space,
    grid_points,
)
from tests.tasks.experiments.experiments_toy import ToyConfig, toy_adapter, toy_config


@pytest.mark.parametrize(("spec", "message"), [
    ({"type": "float", "low": 1.0, "high": 0.1}, "greater than high"),
    ({"type": "float", "low": 0.0, "high": 1.0, "log": True}, "log scale needs low > 0"),
    ({"type": "float", "low": 0.1, "high": 1.0, "log": True, "step": 0.1}, "cannot be combined"),
    ({"type": "int", "low": 1.5, "high": 4}, "integer 'low'"),
    ({"type": "categorical", "choices": []}, "non-empty 'choices'"),
    ({"type": "categorical", "choices": [1, 1]}, "listed twice"),
    ({"type": "categorical", "choices": [1], "low": 0}, "only 'choices'"),
    ({"type": "int", "low": 1}, "both 'low' and 'high'"),
])
def test_contradictory_parameter_is_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        ParameterSpec.model_validate(spec)


def test_unknown_sampler_in_config_names_allowed_values(tmp_path):
    path = tmp_path / "polar.yaml"
    path.write_text("use_case: polar\nsearch:\n  sampler: bayes\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "search.sampler" in str(err.value) and "'tpe'" in str(err.value)


def test_unknown_sampler_and_pruner_names_in_code():
    with pytest.raises(ValueError, match=r"unknown sampler 'bayes'; allowed: \['grid'"):
        make_sampler("bayes", {}, 0)
    with pytest.raises(ValueError, match="unknown pruner"):
        make_pruner("early", SearchConfig(), 5)


def test_empty_space_is_an_error(tmp_path):
    with pytest.raises(SearchSpaceError, match="empty"):
        check_space({})
    cfg = toy_config(tmp_path, space={})
    with pytest.raises(SearchSpaceError, match="search.space is empty"):
        prepare_study(cfg, toy_adapter(cfg))


def test_paper_crop_grid_and_example_configs_validate(repo_root):
    crop = load_config(repo_root / "configs/food_security.yaml")
    assert crop.search.sampler == "grid"
    points = grid_points(crop.search.space)
    assert len(points) == 15
    assert {(p["train.layers"], p["train.cells"]) for p in points} == {
        (layer, cells) for layer in (2, 3, 4) for cells in (100, 125, 200, 225, 300)}
    polar = load_config(repo_root / "configs/polar.yaml")
    assert polar.search.space["train.learning_rate"].log
    assert set(polar.search.space) >= {"train.learning_rate", "train.dropout",
                                       "train.batch_size", "train.model"}
    assert polar.ablation.components and crop.ablation.components
    for cfg in (polar, crop):
        for name, component in cfg.ablation.components.items():
            apply_overrides(cfg, component.overrides, source=name)  # every key exists


def test_grid_needs_finite_values(tmp_path):
    cfg = toy_config(tmp_path, sampler="grid")
    with pytest.raises(SearchSpaceError, match="needs a finite set"):
        prepare_study(cfg, toy_adapter(cfg))


def test_apply_overrides_revalidates_and_names_bad_keys(tmp_path):
    cfg = toy_config(tmp_path)
    changed = apply_overrides(cfg, {"train.hidden": 3, "seed": 7})
    assert changed.train.hidden == 3 and changed.seed == 7 and cfg.train.hidden == 8
    assert isinstance(changed, ToyConfig)
    with pytest.raises(ConfigError, match=r"train.hiden.*unknown key.*allowed keys here"):
        apply_overrides(cfg, {"train.hiden": 3})
    with pytest.raises(ConfigError, match="train.hidden"):
        apply_overrides(cfg, {"train.hidden": 0})
