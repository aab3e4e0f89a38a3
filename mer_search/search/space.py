"""Search spaces in YAML, compiled to an Optuna define-by-run function, validated against the builders.

A space file:

    # mer-search sweep spaces/text_mlp.yaml --prepared runs/meld
    search: {metric: dev_wf1, mode: max, max_epochs: 30, grace_period: 3, reduction_factor: 3,
             num_samples: 40, sampler: tpe}
    fixed:  {model.name: text_mlp, data.batch_size: 32}
    params:
      model.emb_dim: {type: int, low: 32, high: 256, log: true}
      model.pooling: {type: categorical, choices: [mean, max, last], when: {model.name: text_lstm}}

Keys are dotted paths into a training config (data., model., train., and nested
model configs such as model.utterance.). `when` makes a parameter exist only for
some values of others (Optuna's conditional, define-by-run spaces). An optional
`final:` mapping holds what `mer-search export` sets instead of the searched value,
for shortcuts that only the search takes (e.g. `data.train_fraction: 1.0` after
trials on a share of train). An optional `start:` list holds points (some or all
of the parameters) that a new sweep tries first, in order, before its sampler
takes over: known-good settings, so that even a 10-trial budget tries them.
`search.startup_trials` (default 10, Optuna's) is how many trials TPE samples at
random before it models the results (bench/search_efficiency.py gives it a quarter).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mer_search.data.corpus import DATA_RANGES, DataConfig
from mer_search.core.errors import UserError
from mer_search.core.metrics import MODES, SELECTABLE
from mer_search.core.config_io import field_types, loads, type_problem
from mer_search.models import NESTED, derived_arguments, model_argument_types, model_names
from mer_search.core.plan import SAMPLERS, SearchSettings
from mer_search.training.train import TRAIN_RANGES, TrainConfig

TYPES = ("float", "int", "categorical", "bool")
METRICS = SELECTABLE


class SpaceError(UserError, ValueError):
    """A space that cannot run; the message names the file and the key."""


@dataclass
class Param:
    """One searched parameter, as a space's `params:` gives it."""
    type: str                                  # float | int | categorical | bool
    low: float | None = None                   # float, int
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list | None = None                # categorical
    when: dict[str, Any] | None = None         # exists only when these keys take these values

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(cls.__dataclass_fields__)


@dataclass
class Space:
    path: Path
    search: SearchSettings
    fixed: dict[str, Any]
    params: dict[str, Param]           # load_space validates the YAML's mappings, then makes them Params
    command: str = ""
    final: dict[str, Any] = field(default_factory=dict)     # what export sets instead (e.g. all of train)
    start: list[dict[str, Any]] = field(default_factory=list)   # tried first by a new sweep
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.path.stem

    def __setstate__(self, st: dict) -> None:
        """Unpickled from a searcher Tune saved (a resumed sweep), possibly by an older mer-search whose
        params and search settings were plain mappings: read them as they meant."""
        if isinstance(st.get("search"), dict):
            st["search"] = SearchSettings.from_dict(st["search"])
        st["params"] = {k: Param(**p) if isinstance(p, dict) else p for k, p in st.get("params", {}).items()}
        self.__dict__.update(st)

    def sample(self, trial) -> dict[str, Any]:
        """Define-by-run: ask the trial for each active parameter; returns the flat config."""
        flat = dict(self.fixed)
        for key, p in self.params.items():
            if not _active(p.when, flat):
                continue
            if p.type == "float":
                flat[key] = trial.suggest_float(key, p.low, p.high, log=p.log, step=p.step)
            elif p.type == "int":
                flat[key] = trial.suggest_int(key, p.low, p.high, log=p.log, step=p.step or 1)
            elif p.type == "bool":
                flat[key] = trial.suggest_categorical(key, [False, True])
            else:
                encoded = [json.dumps(c) for c in p.choices]
                flat[key] = json.loads(trial.suggest_categorical(key, encoded))
        return flat

    def encoded(self, point: dict[str, Any]) -> dict[str, Any]:
        """A start point as Optuna stores it (`sample` asks categoricals as JSON strings), for enqueue_trial."""
        return {k: json.dumps(v) if self.params[k].type == "categorical" else v for k, v in point.items()}

    def distributions(self) -> dict:
        """key -> the Optuna distribution `sample` asks for (to check that old trials fit this space)."""
        from optuna import distributions as d

        out = {}
        for key, p in self.params.items():
            if p.type == "float":
                out[key] = d.FloatDistribution(p.low, p.high, log=p.log, step=p.step)
            elif p.type == "int":
                out[key] = d.IntDistribution(p.low, p.high, log=p.log, step=p.step or 1)
            elif p.type == "bool":
                out[key] = d.CategoricalDistribution([False, True])
            else:
                out[key] = d.CategoricalDistribution([json.dumps(c) for c in p.choices])
        return out


def _active(when: dict | None, flat: dict) -> bool:
    if not when:
        return True
    for key, want in when.items():
        allowed = want if isinstance(want, list) else [want]
        if key not in flat or flat[key] not in allowed:
            return False
    return True


def load_space(path: str | Path) -> Space:
    path = Path(path)
    if not path.exists():
        raise SpaceError(f"{path}: no such space file")
    text = path.read_text()
    try:
        raw = loads(text)
    except yaml.YAMLError as e:
        raise SpaceError(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise SpaceError(f"{path}: expected a mapping with search, fixed and params")
    unknown = sorted(set(raw) - {"search", "fixed", "params", "final", "start", "description"})
    if unknown:
        raise SpaceError(f"{path}: unknown top-level key(s) {', '.join(unknown)}; valid: search, fixed, params, "
                         f"final, start")
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    given = raw.get("search") or {}
    if not isinstance(given, dict):
        raise SpaceError(f"{path}: search: expected a mapping, got {given!r}")
    unknown = sorted(set(given) - set(SearchSettings.names()))
    if unknown:
        raise SpaceError(f"{path}: search: unknown key(s) {', '.join(unknown)}; "
                         f"valid: {', '.join(SearchSettings.names())}")
    search = SearchSettings.from_dict(given)
    if "mode" not in given:         # the metric says which way is better (dev_loss: min)
        search.mode = MODES.get(search.metric, "max")
    space = Space(path, search, dict(raw.get("fixed") or {}), dict(raw.get("params") or {}),
                  command=first.lstrip("# ").strip() if first.startswith("#") else "",
                  final=dict(raw.get("final") or {}), start=list(raw.get("start") or []))
    validate(space)
    return space


def _fail(space: Space, where: str, msg: str) -> None:
    raise SpaceError(f"{space.path}: {where}: {msg}")


def _names(fixed: dict, params: dict, key: str) -> set[str]:
    """Every value a name key can take in this space."""
    if key in fixed:
        return {fixed[key]}
    p = params.get(key)
    if isinstance(p, Param):
        return set(p.choices or [])
    return set(p.get("choices") or []) if isinstance(p, dict) else set()


def _model_names(space: Space) -> set[str]:
    return _names(space.fixed, space.params, "model.name")


def _builder_keys(prefix: str, names: set[str]) -> dict[str, list]:
    """key -> the types it takes, for every argument of the builders named, under a prefix such as model."""
    out: dict[str, list] = {f"{prefix}name": [str]}
    for name in names:
        if name not in model_names():
            continue
        for arg, tp in model_argument_types(name).items():
            out.setdefault(f"{prefix}{arg}", []).append(tp)     # text_any: hidden is a list or an int
    return out


def _config_keys(fixed: dict, params: dict, root: str) -> dict[str, list]:
    """Every key a training config rooted at `root` (\"\" or \"utterance_stage.\") may set, with its types."""
    keys: dict[str, list] = {}
    keys.update({f"{root}data.{k}": [tp] for k, tp in field_types(DataConfig).items()})
    keys.update({f"{root}train.{k}": [tp] for k, tp in field_types(TrainConfig).items()})
    keys.update(_builder_keys(f"{root}model.", _names(fixed, params, f"{root}model.name")))
    for nested in NESTED:
        sub = _names(fixed, params, f"{root}model.{nested}.name")
        if sub:
            keys.update(_builder_keys(f"{root}model.{nested}.", sub))
    return keys


def _schema(space: Space) -> dict[str, Any]:
    keys = _config_keys(space.fixed, space.params, "")
    if any(k.startswith("utterance_stage.") for k in list(space.fixed) + list(space.params)):
        keys.update(_config_keys(space.fixed, space.params, "utterance_stage."))
    return keys


def validate(space: Space) -> None:
    """Every mistake a space can hold, reported as file + key + what is wrong."""
    s = space.search
    if s.metric not in METRICS:
        _fail(space, "search.metric", f"unknown metric {s.metric!r}; valid: {', '.join(METRICS)}")
    if s.mode != MODES[s.metric]:
        _fail(space, "search.mode", f"{s.mode!r}, but {s.metric} is better when {MODES[s.metric]}imised: "
                                    f"use {MODES[s.metric]} or leave mode out")
    if s.sampler not in SAMPLERS:
        _fail(space, "search.sampler", f"unknown sampler {s.sampler!r}; valid: {', '.join(SAMPLERS)}")
    for k in ("max_epochs", "num_samples", "reports_per_epoch"):
        value = getattr(s, k)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            _fail(space, f"search.{k}", f"{value!r} must be a positive integer")
    grace = s.grace_period
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace * s.reports_per_epoch < 1 \
            or abs(grace * s.reports_per_epoch - round(grace * s.reports_per_epoch)) > 1e-6:
        _fail(space, "search.grace_period", f"{grace!r} must be a whole number of reports: a positive integer, "
                                            f"or a multiple of 1/reports_per_epoch ({s.reports_per_epoch})")
    if not isinstance(s.startup_trials, int) or isinstance(s.startup_trials, bool) or s.startup_trials < 0:
        _fail(space, "search.startup_trials", f"{s.startup_trials!r} must be a whole number >= 0")
    if not isinstance(s.reduction_factor, (int, float)) or s.reduction_factor < 2:
        _fail(space, "search.reduction_factor", f"{s.reduction_factor!r} must be at least 2")
    names = _model_names(space)
    if not names:
        _fail(space, "model.name", "fix it or make it a categorical parameter")
    valid_names = set(model_names())
    for n in names:
        if n not in valid_names:
            _fail(space, "model.name", f"unknown model {n!r}; valid: {', '.join(sorted(valid_names))}")
    schema = _schema(space)
    for key in [*space.fixed, *space.params]:
        if key == "train.seed" or key.endswith(".train.seed"):
            _fail(space, key, "the sweep's --seed seeds every trial; remove it")
    for key, value in space.fixed.items():
        if key.split(".")[-1] in derived_arguments():
            _fail(space, f"fixed.{key}", "is filled from the prepared data; remove it")
        if key not in schema:
            section = key.rsplit(".", 1)[0] + "."
            valid = sorted(k[len(section):] for k in schema if k.startswith(section) and "." not in k[len(section):])
            _fail(space, f"fixed.{key}", f"unknown parameter; valid under {section[:-1]}: {', '.join(valid)}")
        _check_type(space, f"fixed.{key}", value, schema[key])
    for key, value in space.final.items():      # search-time shortcuts the exported config undoes
        if key not in schema or key.split(".")[-1] in derived_arguments():
            _fail(space, f"final.{key}", "unknown parameter, or one filled from the prepared data")
        _check_type(space, f"final.{key}", value, schema[key])
    parsed: dict[str, Param] = {}
    for key, raw in space.params.items():
        where = f"params.{key}"
        if key.split(".")[-1] in derived_arguments():
            _fail(space, where, "is filled from the prepared data; it cannot be searched")
        if key not in schema:
            section = key.rsplit(".", 1)[0] + "."
            valid = sorted(k[len(section):] for k in schema if k.startswith(section) and "." not in k[len(section):])
            _fail(space, where, f"unknown parameter; valid under {section[:-1]}: {', '.join(valid)}")
        if key in space.fixed:
            _fail(space, where, "is also in fixed; keep one")
        if isinstance(raw, Param):          # validated before (a space built in code)
            raw = {k: v for k, v in vars(raw).items() if v is not None and v is not False}
        if not isinstance(raw, dict) or raw.get("type") not in TYPES:
            _fail(space, where, f"needs type: one of {', '.join(TYPES)}")
        extra = sorted(set(raw) - set(Param.fields()))
        if extra:
            _fail(space, where, f"unknown field(s) {', '.join(extra)}")
        p = parsed[key] = Param(**raw)
        if p.type in ("float", "int"):
            lo, hi = p.low, p.high
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)):
                _fail(space, where, "needs numeric low and high")
            if p.type == "int" and not all(isinstance(v, int) for v in (lo, hi)):
                _fail(space, where, "int bounds must be integers")
            if lo >= hi:
                _fail(space, where, f"low {lo} must be below high {hi}")
            if p.log and lo <= 0:
                _fail(space, where, f"log scale needs low > 0 (got {lo})")
            if p.log and p.step:
                _fail(space, where, "log and step cannot be combined")
            if p.step is not None and p.step <= 0:
                _fail(space, where, f"step {p.step} must be positive")
            rng = _range(key)
            for bound in (lo, hi):
                if rng and rng.problem(bound):
                    _fail(space, where, f"bound {rng.problem(bound)}")
        if p.type == "categorical":
            if not isinstance(p.choices, list) or not p.choices:
                _fail(space, where, "needs a non-empty list of choices")
            for c in p.choices:
                _check_type(space, where, c, schema[key])
        for cond in (p.when or {}):
            if cond not in space.fixed and cond not in space.params:
                _fail(space, f"{where}.when", f"condition on {cond!r}, which is neither a param nor fixed")
            if cond in space.params and list(space.params).index(cond) > list(space.params).index(key):
                _fail(space, f"{where}.when", f"{cond!r} must come before {key!r} in params")
    space.params = parsed
    _check_start(space)


def _check_start(space: Space) -> None:
    """Each start point names searched parameters only, with values the parameter can take."""
    for i, point in enumerate(space.start):
        where = f"start[{i}]"
        if not isinstance(point, dict) or not point:
            _fail(space, where, "must be a non-empty mapping of parameter -> value")
        for key, value in point.items():
            p = space.params.get(key)
            if p is None:
                _fail(space, f"{where}.{key}", "is not a searched parameter (params)")
            if p.type == "categorical" and value not in p.choices:
                _fail(space, f"{where}.{key}", f"{value!r} is not one of its choices {p.choices}")
            if p.type == "bool" and not isinstance(value, bool):
                _fail(space, f"{where}.{key}", f"{value!r} is not true/false")
            if p.type in ("float", "int") and (isinstance(value, bool) or not isinstance(value, (int, float))
                                               or not p.low <= value <= p.high):
                _fail(space, f"{where}.{key}", f"{value!r} is outside [{p.low}, {p.high}]")


def _range(key: str):
    """The range a data./train. setting must lie in (utterance_stage. ones too), or None."""
    *_, section, name = key.split(".")
    return {"data": DATA_RANGES, "train": TRAIN_RANGES}.get(section, {}).get(name)


def _check_type(space: Space, where: str, value: Any, types: list) -> None:
    """A fixed value or choice must have the type the config field or builder argument declares, and lie in
    its range."""
    key = where.split(".", 1)[1] if where.startswith(("fixed.", "final.", "params.")) else where
    rng = _range(key)
    problem = type_problem(value, types) or (rng.problem(value) if rng else None)
    if problem:
        _fail(space, where, problem)


SHIPPED = Path(__file__).resolve().parents[1] / "spaces"      # package data: found from any directory


def all_spaces(root: str | Path | None = None) -> list[Path]:
    """The spaces in `root`; by default ./spaces/ when it holds any, else the shipped ones."""
    if root is None:
        local = sorted(Path("spaces").glob("*.yaml"))
        return local or sorted(SHIPPED.glob("*.yaml"))
    return sorted(Path(root).glob("*.yaml"))


def find_space(name: str | Path) -> Path:
    """A space file, or a name: ./spaces/NAME.yaml when there is one (a local edit wins), else the shipped
    space. The one resolver behind sweep, spaces, pipeline and demo."""
    path = Path(name)
    if path.exists() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        if not path.is_file():
            raise SpaceError(f"{name}: no such space file")
        return path
    for root in (Path("spaces"), SHIPPED):
        if (root / f"{name}.yaml").is_file():
            return root / f"{name}.yaml"
    names = ", ".join(sorted(p.stem for p in SHIPPED.glob("*.yaml")))
    raise SpaceError(f"no space named {name!r} (in ./spaces/ or shipped); shipped spaces: {names}")
