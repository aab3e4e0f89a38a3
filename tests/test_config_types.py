"""One loader for configs and spaces: 1e-3 is a number, and a value of the wrong type is one line that names
the file, the key, the expected type and the value."""

import pytest
from click.testing import CliRunner

from mer_search.cli import main
from mer_search.core.config_io import loads
from mer_search.core.errors import ConfigError
from mer_search.training.config import load_config
from mer_search.search.space import SpaceError, load_space


def test_exponents_without_a_dot_are_numbers():
    assert loads("a: 1e-3\nb: 5E-5\nc: -2e+4\nd: 1.0e-3\ne: 3\nf: 1e3x\ng: '1e-3'") == \
        {"a": 0.001, "b": 5e-05, "c": -20000.0, "d": 0.001, "e": 3, "f": "1e3x", "g": "1e-3"}


def test_the_loader_stays_safe():
    """config_io.Loader is yaml.SafeLoader plus one number form: no Python object is ever built."""
    import yaml

    from mer_search.core.config_io import Loader

    assert issubclass(Loader, yaml.SafeLoader)
    with pytest.raises(yaml.constructor.ConstructorError):
        loads("!!python/object/apply:os.system ['echo unsafe']")
    assert yaml.safe_load("a: 1e-3") == {"a": "1e-3"}        # plain SafeLoader untouched (YAML 1.1)


def test_lr_1e_3_in_a_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {prepared: p}\nmodel: {name: text_mlp, dropout: 1e-1}\ntrain: {lr: 1e-3, weight_decay: 5e-5}\n")
    cfg = load_config(path)
    assert cfg["train"] == {"lr": 0.001, "weight_decay": 5e-05} and cfg["model"]["dropout"] == 0.1


def test_lr_1e_3_in_a_space(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("# mer-search sweep s.yaml\nsearch: {num_samples: 2}\nfixed: {model.name: text_mlp, train.weight_decay: 1e-4}\n"
                    "params:\n  train.lr: {type: float, low: 1e-5, high: 3e-2, log: true}\n")
    space = load_space(path)
    assert space.params["train.lr"].low == 1e-05 and space.fixed["train.weight_decay"] == 1e-4


@pytest.mark.parametrize("section, line, message", [
    ("train", "lr: fast", "train.lr: expected a number, got 'fast' (a str)"),
    ("train", "epochs: 2.5", "train.epochs: expected an integer, got 2.5 (a float)"),
    ("train", "amp: 'yes'", "train.amp: expected true/false, got 'yes' (a str)"),
    ("train", "class_weights: 3", "train.class_weights: expected a list or null, got 3 (an int)"),
    ("data", "batch_size: '32'", "data.batch_size: expected an integer, got '32' (a str)"),
    ("data", "feature_dirs: [a]", "data.feature_dirs: expected a mapping, got ['a'] (a list)"),
    ("model", "hidden: 64", "model.hidden: expected a list, got 64 (an int)"),
    ("model", "dropout: true", "model.dropout: expected a number, got True (a bool)"),
])
def test_each_wrong_type_is_one_line(tmp_path, section, line, message):
    body = {"data": "prepared: p", "model": "name: text_mlp", "train": "epochs: 2"}
    body[section] = f"{body[section]}, {line}" if section == "model" else line + (", prepared: p" if section == "data" else "")
    path = tmp_path / "bad.yaml"
    path.write_text("".join(f"{k}: {{{v}}}\n" for k, v in body.items()))
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == f"{path}: {message}"
    r = CliRunner().invoke(main, ["train", str(path)])          # the CLI: that line, exit 1, no traceback
    assert r.exit_code == 1 and r.stderr.strip() == f"error: {e.value}" and "Traceback" not in r.output


def test_nested_model_and_utterance_stage_types(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {prepared: p}\nmodel: {name: context, utterance: {name: text_lstm, hidden: [32]}}\n")
    with pytest.raises(ConfigError, match=r"model.utterance.hidden: expected an integer, got \[32\]"):
        load_config(path)
    path.write_text("model: {name: context}\nutterance_stage: {model: {name: text_mlp}, train: {lr: 'x'}}\n")
    with pytest.raises(ConfigError, match=r"utterance_stage.train.lr: expected a number"):
        load_config(path)


def test_a_wrong_type_in_a_space(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("search: {num_samples: 2}\nfixed: {model.name: text_mlp, train.lr: fast}\nparams: {}\n")
    with pytest.raises(SpaceError, match=r"s.yaml: fixed.train.lr: expected a number, got 'fast' \(a str\)"):
        load_space(path)
    path.write_text("search: {num_samples: 2}\nfixed: {model.name: text_any_unknown}\nparams: {}\n")
    with pytest.raises(SpaceError, match="unknown model"):
        load_space(path)


def test_the_metric_sets_the_direction(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("search: {metric: dev_loss}\nfixed: {model.name: text_mlp}\nparams: {}\n")
    assert load_space(path).search.mode == "min"
    path.write_text("search: {metric: dev_loss, mode: max}\nfixed: {model.name: text_mlp}\nparams: {}\n")
    with pytest.raises(SpaceError, match="search.mode: 'max', but dev_loss is better when minimised"):
        load_space(path)
