"""The base of every config schema: strict models, (low, high) ranges, readable validation errors.

Every section of an experiment (simulator, task, rewards, training, curriculum, population) is a `StrictModel`:
unknown keys and wrong types are errors, so a typo in a YAML file fails with a message naming the field instead
of being silently ignored or coerced. It lives at the bottom layer so that every layer's schema can build on it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Strict, ValidationError

StrictFloat = Annotated[float, Strict()]
#: A (low, high) pair. YAML gives lists, so the tuple itself is lax while its items stay strict.
Range = Annotated[tuple[StrictFloat, StrictFloat], Strict(False)]


class StrictModel(BaseModel):
    """Base of every config model: unknown keys and wrong types are errors."""

    # NaN and infinity are never a setting: `.nan` or `.inf` in a YAML file is an error, not a run that trains on NaN
    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True, allow_inf_nan=False)


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats: `1e-3` and `3e+4` are numbers (YAML 1.1 wants `1.0e-3`)."""


_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+][0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """Parse YAML the way users write numbers (`lr: 3e-4`); raises yaml.YAMLError."""
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 -- a SafeLoader subclass


def check_range(name: str, value: tuple[float, float], *, minimum: float | None = None) -> None:
    """Raise ValueError unless `value` is an ordered (low, high) pair at or above `minimum`."""
    low, high = value
    if low > high:
        raise ValueError(f"{name}: low {low} is larger than high {high}; write [low, high]")
    if minimum is not None and low < minimum:
        raise ValueError(f"{name}: {low} is below the allowed minimum {minimum}")


#: A message of a model-level check that names the field it is about, e.g. "levels.2.box_size_m: ...".
_NAMED_FIELD = re.compile(r"([A-Za-z_]\w*(?:\.\w+)*): (.*)", re.DOTALL)


def format_validation_error(error: ValidationError, prefix: str = "") -> str:
    """One readable line per problem: `field.path: message (got value)`.

    A model-level check reports at the model's path; when its message starts with the field it is about,
    that field continues the path (`curriculum` + `levels.2.box_size_m: ...`).
    """
    lines = []
    for item in error.errors():
        path = ".".join(str(p) for p in (prefix, *item["loc"]) if p != "")
        message = item["msg"].removeprefix("Value error, ")
        named = _NAMED_FIELD.fullmatch(message) if item["type"] == "value_error" else None
        if named:
            path = ".".join(p for p in (path, named[1]) if p)
            message = named[2]
        shown = "" if item["type"] in ("missing", "value_error") else f" (got {item.get('input')!r})"
        lines.append(f"{path}: {message}{shown}" if path else message)
    return "\n".join(lines)
