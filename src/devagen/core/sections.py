"""Reading params.yaml into typed sections: YAML parsed once, each value cast to its field's type (DVC's -S
writes 5e-05 as a string), unknown keys refused with one line naming `section.key`. Knows no section in
particular: devagen.core.params builds the whole Params and checks combinations."""

from __future__ import annotations

import functools
import types
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import DevagenError, check

T = TypeVar("T")


def _cast(value: Any, typ: Any, key: str) -> Any:
    """Cast one YAML value to the declared field type, or raise naming the key."""
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "null", "none")):
            return None
        return _cast(value, args[0], key)
    if origin is tuple:  # a YAML list (as `dvc exp run -S 'k=[1,2]'` writes it), or its text
        items = yaml.safe_load(value) if isinstance(value, str) else value
        check(isinstance(items, (list, tuple)), key, f"expected a list like [64, 128], got {value!r}")
        return tuple(_cast(item, typing.get_args(typ)[0], f"{key}[{i}]") for i, item in enumerate(items))
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            check(text in ("true", "false", "1", "0", "yes", "no"), key, f"expected true/false, got {value!r}")
            return text in ("true", "1", "yes")
        if typ is int:
            number = float(value)
            check(number == int(number), key, f"expected an integer, got {value!r}")
            return int(number)
        if typ is float:
            return float(value)
        if typ is str:
            check(value is not None, key, "must not be empty")
            if isinstance(value, bool):  # YAML 1.1 reads an unquoted off/no/false (on/yes/true) as a boolean
                return "on" if value else "off"
            return str(value)
    except (TypeError, ValueError):
        raise DevagenError(f"params.yaml: {key}: expected {typ.__name__}, got {value!r}") from None
    return value


@functools.lru_cache(maxsize=None)
def type_hints(cls: type) -> dict[str, Any]:
    """cls's field types, resolved once (typing.get_type_hints compiles every annotation on each call)."""
    return typing.get_type_hints(cls)


def section_from_dict(cls: type, raw: Any, section: str) -> Any:
    """Build one section's dataclass from its YAML mapping; reject unknown keys."""
    raw = raw or {}
    check(isinstance(raw, dict), section, "must be a mapping of key: value")
    hints = type_hints(cls)
    known = {f.name for f in fields(cls)}
    for key in raw:
        check(key in known, f"{section}.{key}", f"unknown key (known: {', '.join(sorted(known))})")
    values = {k: _cast(v, hints[k], f"{section}.{k}") for k, v in raw.items()}
    return cls(**values)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """params.yaml parsed (a mapping of sections), or one line naming the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise DevagenError(f"{path}: not found; run from the repository root or pass --params PATH")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DevagenError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    raw = raw or {}
    check(isinstance(raw, dict), "(top level)", "must be a mapping of sections")
    return raw


def load_section(path: str | Path, name: str, cls: type[T]) -> T:
    """One validated section of params.yaml, for a command that needs no other (fetch)."""
    return section_from_dict(cls, read_yaml(path).get(name), name)
