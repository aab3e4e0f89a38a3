"""Every space file validates, samples configs that build models, and each mistake is named."""

from pathlib import Path

import optuna
import pytest

from mer_search.data.encoder_cache import ENCODERS, EncoderInstallError, installed_path
from mer_search.models import build_model, model_names, resolve_sizes
from mer_search.core.dirs import nest
from mer_search.core.errors import ConfigError
from mer_search.search.space import Space, SpaceError, all_spaces, load_space

REPO = Path(__file__).resolve().parents[1]
SPACES = all_spaces(REPO / "spaces")
SIZES = {"vocab_size": 100, "n_mels": 40, "input_dim": 16, "text_dim": 16, "speech_dim": 24}


class FixedSizes:
    """Data sizes without prepared data (models.DataSizes): every vector 16 wide."""
    vocab_size, n_mels, num_classes = SIZES["vocab_size"], SIZES["n_mels"], 7

    def vector_dim(self, kind: str) -> int:
        return 16

    def feature_score(self, kind: str) -> float:
        return 0.5


def fill_sizes(model: dict) -> dict:
    return resolve_sizes(model, FixedSizes())


def test_spaces_cover_every_architecture():
    names = set()
    for path in SPACES:
        s = load_space(path)
        names |= {s.fixed["model.name"]} if "model.name" in s.fixed else set(s.params["model.name"].choices)
        names |= {s.fixed[k] for k in s.fixed if k.endswith(".name")}
    assert names == set(model_names())
    assert {p.stem for p in SPACES} >= {"text_mlp", "text_lstm", "text_transformer", "text_pretrained",
                                         "speech_cnn2d", "speech_cnn1d", "speech_lstm", "speech_functionals",
                                         "context_two_stage", "context_joint", "fusion", "text_any", "speech_any",
                                         "text_finetune", "speech_stats"}


SHIPPED = sorted((Path(__file__).resolve().parents[1] / "mer_search" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_configs_parse_and_build(path):
    """Every `mer-search train NAME` config: its first line runs it, its sections parse, its model builds."""
    import yaml

    from mer_search.training.config import parse

    assert path.read_text().startswith(f"# mer-search train {path.stem} ")
    cfg = yaml.safe_load(path.read_text())
    _, model, _ = parse(cfg)
    if model.get("name") != "text_finetune":       # loads a 22 M-parameter encoder: covered in test_finetune
        build_model(fill_sizes(model))


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_space_samples_20_buildable_configs(path):
    space = load_space(path)
    assert space.command.startswith(f"mer-search sweep spaces/{path.name}"), "first line gives the command"
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen, built, not_installed = set(), 0, set()
    for _ in range(20):
        trial = study.ask()
        cfg = nest(space.sample(trial))
        encoder = cfg["model"].get("encoder")
        if encoder in ENCODERS and not encoder_installed(encoder):
            # an optional encoder this machine lacks (mpnet: `./install.sh mpnet`): the build must refuse it
            # with the install hint, not a stack trace from transformers
            with pytest.raises(ConfigError, match=f"{encoder} is not installed.*mer-search encoders install {encoder}"):
                build_model(fill_sizes(cfg["model"]))
            not_installed.add(encoder)
        else:
            assert build_model(fill_sizes(cfg["model"])).feature_dim > 0
            built += 1
        seen.add(repr(sorted(trial.params.items())))
        study.tell(trial, 0.5)
    assert len(seen) > 10, "sampling explores the space"
    assert built >= 5, f"only {built} of 20 samples built here (not installed: {sorted(not_installed)})"


def encoder_installed(name: str) -> bool:
    try:
        installed_path(name)
        return True
    except EncoderInstallError:
        return False


def _write(tmp_path, text):
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, message", [
    ("search: [\n", "invalid YAML"),
    ("fixed: {model.name: text_mlp}\nparams: {model.width: {type: int, low: 1, high: 3}}\n",
     "params.model.width: unknown parameter; valid under model: dropout, emb_dim, hidden, name"),
    ("fixed: {model.name: text_mlp}\nparams: {model.emb_dim: {type: int, low: 64, high: 32}}\n",
     "params.model.emb_dim: low 64 must be below high 32"),
    ("fixed: {model.name: text_mlp}\nparams: {train.lr: {type: float, low: 0, high: 1, log: true}}\n",
     "params.train.lr: log scale needs low > 0"),
    ("fixed: {model.name: text_mlp}\nparams: {model.dropout: {type: float, low: 0.1, high: 0.5, when: {model.kind: x}}}\n",
     "params.model.dropout.when: condition on 'model.kind', which is neither a param nor fixed"),
    ("fixed: {model.name: text_mlp, model.emb_dim: sixty}\n",
     "fixed.model.emb_dim: expected an integer, got 'sixty' (a str)"),
    ("fixed: {model.name: text_mlp, data.batchsize: 3}\n", "fixed.data.batchsize: unknown parameter"),
    ("fixed: {model.name: bert}\n", "model.name: unknown model 'bert'"),
    ("search: {metric: f1}\nfixed: {model.name: text_mlp}\n", "search.metric: unknown metric 'f1'"),
    ("search: {num_samples: 0}\nfixed: {model.name: text_mlp}\n", "search.num_samples: 0 must be a positive integer"),
    ("search: {sampler: grid}\nfixed: {model.name: text_mlp}\n", "search.sampler: unknown sampler 'grid'"),
    ("fixed: {model.name: text_mlp, model.vocab_size: 5}\n", "fixed.model.vocab_size: is filled from the prepared data"),
    ("params: {model.emb_dim: {type: int, low: 1, high: 3}}\n", "model.name: fix it or make it a categorical"),
    ("fixed: {model.name: text_mlp}\nparams: {model.dropout: {type: float, low: 0.1, high: 0.5}}\n"
     "start: [{model.dropout: 0.9}]\n", "start[0].model.dropout: 0.9 is outside [0.1, 0.5]"),
    ("fixed: {model.name: text_mlp}\nparams: {model.dropout: {type: float, low: 0.1, high: 0.5}}\n"
     "start: [{model.emb_dim: 32}]\n", "start[0].model.emb_dim: is not a searched parameter"),
    ("fixed: {model.name: text_mlp}\nparams: {model.hidden: {type: categorical, choices: [[16], [32]]}}\n"
     "start: [{model.hidden: [64]}]\n", "start[0].model.hidden: [64] is not one of its choices"),
])
def test_each_mistake_is_named(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(SpaceError) as err:
        load_space(path)
    assert str(path) in str(err.value) and message in str(err.value), str(err.value)


def test_start_points_are_asked_first_then_the_sampler_takes_over():
    """speech_any's start points, enqueued as the sweep does, come back from sample() in order; parameters a
    point leaves out (and later trials) are sampled."""
    space = load_space(REPO / "spaces" / "speech_any.yaml")
    assert len(space.start) == 3
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for point in space.start:
        study.enqueue_trial(space.encoded(point))
    for point in space.start:
        trial = study.ask()
        flat = space.sample(trial)
        assert {k: flat[k] for k in point} == point
        assert "data.time_masks" in flat           # not in the point: sampled
        study.tell(trial, 0.5)
    later = {space.sample(study.ask())["model.name"] for _ in range(12)}
    assert len(later) >= 3                          # the sampler roams the whole space again


def test_conditional_parameters_exist_only_when_their_condition_holds():
    space = load_space(REPO / "spaces" / "text_any.yaml")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(30):
        trial = study.ask()
        flat = space.sample(trial)
        name = flat["model.name"]
        assert ("model.pooling" in flat) == (name == "text_lstm")
        assert ("model.heads" in flat) == (name == "text_transformer")
        assert ("model.hidden" in flat) == (name in ("text_mlp", "text_pretrained"))
        assert ("model.emb_dim" in flat) == (name != "text_pretrained")
        study.tell(trial, 0.1)


def test_cli_validate_and_show(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from mer_search.cli import main

    monkeypatch.chdir(REPO)
    r = CliRunner().invoke(main, ["spaces", "validate"])
    assert r.exit_code == 0 and r.output.count("ok ") == len(SPACES)
    r = CliRunner().invoke(main, ["spaces", "show", "text_any"])
    assert r.exit_code == 0 and "model.pooling: categorical ['mean', 'max', 'last']   when {'model.name': 'text_lstm'}" \
        in r.output
    bad = _write(tmp_path, "fixed: {model.name: text_mlp}\nparams: {model.emb_dim: {type: int, low: 9, high: 3}}\n")
    r = CliRunner().invoke(main, ["spaces", "validate", str(bad)])
    assert r.exit_code == 1 and "low 9 must be below high 3" in r.stderr


def test_a_space_pickled_by_an_older_version_samples_after_a_resume():
    """Tune pickles the searcher with the space's sample function; an older mer-search kept params and search
    settings as plain mappings. Unpickled by this one (a sweep resumed after an upgrade), it samples the same."""
    import copy
    import pickle

    space = load_space(REPO / "spaces" / "text_any.yaml")
    old = copy.copy(space.__dict__)
    old["params"] = {k: {f: v for f, v in vars(p).items() if v is not None} for k, p in space.params.items()}
    old["search"] = space.search.to_dict()
    revived = Space.__new__(Space)
    revived.__setstate__(old)
    again = pickle.loads(pickle.dumps(revived))
    assert again.params == space.params and again.search == space.search
    a = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    b = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    assert [space.sample(a.ask()) for _ in range(5)] == [again.sample(b.ask()) for _ in range(5)]
