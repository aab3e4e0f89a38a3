"""Reading YAML configs and spaces, and checking the types of what they set: one loader, one type rule.

PyYAML follows YAML 1.1, where `1e-3` (no dot) is a string, not a number, so `lr: 1e-3` used to reach the
optimizer as '1e-3'. The loader here also reads the exponent forms people write (1e-3, 5E-5, 2e+4) as floats.
A value's expected type comes from the annotation of the config field or model-builder argument it sets.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from mer_search.core.errors import ConfigError, UserError


class Loader(yaml.SafeLoader):
    """yaml.SafeLoader (no object construction), plus floats written without a dot: 1e-3, -5E+2."""


Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                             re.compile(r"^[-+]?[0-9][0-9_]*(\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def load_yaml(path: str | Path, error: type[UserError] = UserError, what: str = "file") -> Any:
    """A YAML file's content; a missing file or a syntax error is an `error` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such {what}")
    try:
        return loads(path.read_text())
    except yaml.YAMLError as e:
        raise error(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None


def loads(text: str) -> Any:
    return yaml.load(text, Loader=Loader)


# -- types ------------------------------------------------------------------------------------------------
def field_types(cls) -> dict[str, Any]:
    """A config dataclass's field -> its type (resolved from the annotation)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, _default_type(f.default, f.default_factory)) for f in fields(cls)}


def argument_types(fn) -> dict[str, Any]:
    """A builder's argument -> its type: the annotation, else the default's type, else Any."""
    try:
        hints = typing.get_type_hints(fn)
    except (NameError, TypeError):
        hints = {}
    return {name: hints.get(name, _default_type(p.default, MISSING))
            for name, p in inspect.signature(fn).parameters.items()}


def _default_type(default, factory) -> Any:
    if default is not MISSING and default is not inspect.Parameter.empty and default is not None:
        return type(default)
    if factory is not MISSING:
        return type(factory())
    return Any


def type_name(tp) -> str:
    if tp is Any:
        return "anything"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else type_name(a) for a in args)
    if origin in (list, tuple):
        return "a list"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string", dict: "a mapping",
            list: "a list", tuple: "a list"}.get(tp, getattr(tp, "__name__", str(tp)))


def fits(value: Any, tp) -> bool:
    """Whether a YAML value can stand for `tp` (an int is a fine float; a bool is not a number)."""
    if tp is Any:
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, a) for a in args)
    if tp is type(None):
        return value is None
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        inner = [a for a in args if a is not Ellipsis]
        return len(inner) != 1 or all(fits(v, inner[0]) for v in value)
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


@dataclass(frozen=True)
class Range:
    """Where a numeric setting makes sense: low/high bounds, each inclusive unless *_open."""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low}"
        return f"in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"

    def problem(self, value: Any) -> str | None:
        """None when `value` is inside (or not a number: the type check's to name), else why not."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        return f"{value!r} must be {self}" if below or above else None


POSITIVE, COUNT, NATURAL = Range(0, low_open=True), Range(1), Range(0)


def type_problem(value: Any, candidates: list) -> str | None:
    """None when `value` fits one of the types (a key several builders share may have several), else why not."""
    if any(fits(value, tp) for tp in candidates):
        return None
    expected = " or ".join(dict.fromkeys(type_name(tp) for tp in candidates))
    kind = type(value).__name__
    return f"expected {expected}, got {value!r} ({'an' if kind[0] in 'aeiou' else 'a'} {kind})"


def parse_duration(text: str) -> float:
    """'2h', '90m', '1h30m', '45s' or plain seconds -> seconds."""
    t = str(text).strip().lower()
    m = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?", t)
    if not t or not m or not any(m.groups()):
        raise ConfigError(f"--time-budget {text!r}: give a duration like 2h, 90m, 1h30m or 600s")
    h, mins, secs = (float(g) if g else 0.0 for g in m.groups())
    total = h * 3600 + mins * 60 + secs
    if total <= 0:
        raise ConfigError(f"--time-budget {text!r}: must be longer than zero")
    return total
