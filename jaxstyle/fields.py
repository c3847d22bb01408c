"""Typed, range-checked settings: each rule is written once, on its dataclass field.

The settings dataclasses (`optim.Settings`, `training.TrainSettings`, `cyclegan.CycleGANSettings`)
declare their fields with `setting(...)` and call `check_fields(self)` in `__post_init__`, so a
value is checked the same way whether it comes from a command-line flag, a `--settings` sidecar,
a manifest line or Python. The type comes from the field's annotation (`int`, `float`, `str`,
`tuple[str, ...]`, `tuple[float, ...]`, each optionally `| None`); JSON lists become tuples and
integers are accepted as floats, but nothing else is converted: "ten", 64.7, true and null are
refused for an `int`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from jaxstyle.errors import JaxstyleError

FLOAT32_MAX = 3.4028234e38  # the losses are float32: a larger weight is inf before the first step
SEED_MAX = 2**32 - 1  # JAX and NumPy seeds are unsigned 32-bit


def setting(default, *, group: str | None = None, min: float | None = None, above: float | None = None,
            max: float | None = None, choices: tuple | None = None):
    """A dataclass field with its rules: `min` <= value (each item of a tuple), `above` < value,
    value <= `max`, value in `choices`; `group` is free for the dataclass's own use."""
    rules = {"group": group, "min": min, "above": above, "max": max, "choices": choices}
    return dataclasses.field(default=default, metadata={k: v for k, v in rules.items() if v is not None})


def option_name(name: str) -> str:
    """How a field is named for a user: `lbfgs_memory (--lbfgs-memory)`."""
    return f"{name} (--{name.replace('_', '-')})"


def check_fields(instance) -> None:
    """Checks (and normalises: lists to tuples, ints to floats) every field of a frozen dataclass
    against its annotation and rules; raises JaxstyleError naming every field that is wrong."""
    problems = []
    for field in dataclasses.fields(instance):
        try:
            value = _typed(getattr(instance, field.name), str(field.type))
            _check_rules(value, field.metadata)
        except ValueError as e:
            problems.append(f"{option_name(field.name)} {e}")
            continue
        object.__setattr__(instance, field.name, value)
    if problems:
        raise JaxstyleError("; ".join(problems))


def from_mapping(cls, data: Any, *, source: str | None = None):
    """An instance of the settings dataclass `cls` from a {name: value} mapping (a sidecar's or a
    manifest's), refusing names `cls` does not have; `source` names where the values come from."""
    prefix = f"{source}: " if source else ""
    if not isinstance(data, Mapping):
        raise JaxstyleError(f"{prefix}settings must be an object of {{name: value}}, got {data!r:.60}")
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise JaxstyleError(f"{prefix}unknown setting(s) {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
    try:
        return cls(**data)
    except JaxstyleError as e:
        raise JaxstyleError(f"{prefix}{e}") from None


def _typed(value, annotation: str):
    """`value` as the annotation's type, or ValueError saying what was expected."""
    base, optional = annotation.removesuffix(" | None"), annotation.endswith(" | None")
    if value is None:
        if optional:
            return None
        raise ValueError(f"must be {_describe(base)}, got null")
    if base.startswith("tuple["):
        item = base[len("tuple["):].split(",")[0]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"must be {_describe(base)}, got {value!r:.60}")
        return tuple(_typed(v, item) for v in value)
    if base == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {value!r:.60}")
        return value
    if base == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if base == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = float(value)
        if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
            raise ValueError(f"must be a finite number within float32's range (|x| <= 3.4e38), got {value}")
        return value
    if base == "str" and isinstance(value, str):
        return value
    raise ValueError(f"must be {_describe(base)}, got {value!r:.60}")


def _describe(base: str) -> str:
    if base.startswith("tuple["):
        return f"a list of {_describe(base[len('tuple['):].split(',')[0])} values"
    return {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}.get(base, base)


def _check_rules(value, rules: Mapping[str, Any]) -> None:
    if value is None:
        return
    items = value if isinstance(value, tuple) else (value,)
    if "choices" in rules and value not in rules["choices"]:
        raise ValueError(f"must be one of {', '.join(rules['choices'])}, got {value!r}")
    for item in items:
        if "min" in rules and item < rules["min"]:
            raise ValueError(f"must be at least {rules['min']:g}, got {item}")
        if "above" in rules and not item > rules["above"]:
            raise ValueError(f"must be more than {rules['above']:g}, got {item}")
        if "max" in rules and item > rules["max"]:
            raise ValueError(f"must be at most {rules['max']:g}, got {item}")
