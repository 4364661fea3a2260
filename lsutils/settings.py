"""Settings with their allowed values, declared once.

Every configuration in ``lsutils`` (a library config such as
:class:`~lsutils.train.TrainConfig`, or a profile's section for one notebook) is a
frozen dataclass whose fields are declared with :func:`setting`: a default, the
allowed range or choices, and one line of documentation. :func:`check` validates
an instance against those declarations, so a value out of range gets the same
message wherever it comes from: the parameter's name, the value, and what is
allowed.

A profile section does not repeat a library config's fields: it takes them with
:func:`same_as` (the same default, range and documentation), and :func:`derive`
turns the section into the library config. So the defaults and the ranges of a
training recipe live in one place, the library config, and what a sidecar records
is the library config that was actually used.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Recipe:
    ...     epochs: int = setting(30, lo=1, doc="passes over the data")
    ...     lr: float = setting(0.1, lo=0.0, lo_open=True, doc="learning rate")
    ...     def __post_init__(self):
    ...         check(self)
    >>> Recipe(epochs=0)
    Traceback (most recent call last):
    ...
    lsutils.settings.SettingError: epochs = 0 is out of range; allowed: [1, inf]
    >>> @dataclass(frozen=True)
    ... class Section:
    ...     seeds: list = setting([0, 1], lo=0, doc="training seeds")
    ...     epochs: int = same_as(Recipe, "epochs")
    >>> derive(Recipe, Section(epochs=3))
    Recipe(epochs=3, lr=0.1)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, TypeVar

__all__ = ["SettingError", "setting", "same_as", "check", "check_value", "check_scalar", "derive", "default_of"]

T = TypeVar("T")


class SettingError(ValueError):
    """A setting with a value it does not allow (the message names both)."""


def setting(default: Any, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
            choices: tuple | None = None, doc: str = "") -> Any:
    """A dataclass field with its allowed range ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``)
    or its ``choices``; a list default means a non-empty list of such values."""
    meta = {"lo": lo, "hi": hi, "lo_open": lo_open, "choices": choices, "doc": doc}
    if isinstance(default, (list, tuple)):
        kind = type(default)
        return dataclasses.field(default_factory=lambda: kind(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _field(cls: type, name: str) -> dataclasses.Field:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f
    raise AttributeError(f"{cls.__name__} has no setting {name!r}")


def default_of(f: dataclasses.Field) -> Any:
    """The default value of a field declared with :func:`setting`."""
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def same_as(cls: type, name: str, default: Any = dataclasses.MISSING) -> Any:
    """The field ``name`` of the dataclass ``cls``: its default (or ``default``), range and doc."""
    f = _field(cls, name)
    return setting(default_of(f) if default is dataclasses.MISSING else default, **f.metadata)


def check_value(name: str, value: Any, f: dataclasses.Field) -> Any:
    """``value`` checked against the declaration of ``f`` and converted to its type
    (an integral float to ``int``, an ``int`` to ``float``, a list to the default's sequence type).

    Raises:
        SettingError: naming ``name``, the value and the allowed values.
    """
    default = default_of(f)
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)) or not value:
            raise SettingError(f"{name}: expected a non-empty list, got {value!r}")
        kind = type(default[0]) if default else type(value[0])
        return type(default)(check_scalar(f"{name}[{i}]", v, kind, f.metadata) for i, v in enumerate(value))
    return check_scalar(name, value, type(default), f.metadata)


def check_scalar(name: str, value: Any, kind: type, meta: Mapping[str, Any]) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            raise SettingError(f"{name}: expected true or false, got {value!r}")
        return value
    if kind in (int, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            raise SettingError(f"{name} = {value!r} is not finite; allowed: a finite number")
        if kind is int and ok and float(value) != int(value):
            ok = False
        if not ok:
            raise SettingError(f"{name}: expected {'an integer' if kind is int else 'a number'}, got {value!r}")
        value = kind(value)
        lo, hi = meta.get("lo"), meta.get("hi")
        too_low = lo is not None and (value <= lo if meta.get("lo_open") else value < lo)
        if too_low or (hi is not None and value > hi):
            left = "(" if meta.get("lo_open") else "["
            rng = f"{left}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
            raise SettingError(f"{name} = {value!r} is out of range; allowed: {rng}")
        return value
    if meta.get("choices") and value not in meta["choices"]:
        raise SettingError(f"{name} = {value!r}; allowed: {', '.join(map(str, meta['choices']))}")
    if not isinstance(value, kind):
        raise SettingError(f"{name}: expected {kind.__name__}, got {value!r}")
    return value


def check(obj: Any) -> None:
    """Validate every field of the dataclass instance ``obj`` declared with :func:`setting`,
    normalising types in place (frozen dataclasses included)."""
    for f in dataclasses.fields(obj):
        if "lo" not in f.metadata:
            continue
        value = check_value(f.name, getattr(obj, f.name), f)
        object.__setattr__(obj, f.name, value)


def derive(cls: type[T], source: Any, **fixed: Any) -> T:
    """An instance of the dataclass ``cls`` with every field that ``source`` (a dataclass
    instance or a mapping) also has, then ``fixed``; the other fields keep their defaults."""
    get = source.get if isinstance(source, Mapping) else lambda k, d: getattr(source, k, d)
    missing = object()
    values = {f.name: v for f in dataclasses.fields(cls) if (v := get(f.name, missing)) is not missing}
    values.update(fixed)
    return cls(**values)
