"""Pydantic validation errors as one line per problem: `file: dotted.key: problem (got VALUE; allowed: ...)`."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError


def format_validation_error(exc: ValidationError, root: type[BaseModel], prefix: str) -> str:
    """Pydantic errors as `prefix: dotted.path: problem (got VALUE; allowed: ...)`, one per line.

    Discriminated-union tags that pydantic adds to locations (`decoder.refinenet.widht`) are dropped, so the key
    reads as the user wrote it (`decoder.widht`)."""
    lines = []
    for err in exc.errors():
        _, tags = _walk(root, tuple(err["loc"]))
        loc = [str(p) for i, p in enumerate(err["loc"]) if i not in tags]
        key = ".".join(loc) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            allowed = _fields_at(root, err["loc"][:-1])
            msg = f"unknown key (allowed: {', '.join(allowed)})" if allowed else "unknown key"
        elif "input" in err and err["type"] not in ("missing",):
            msg = f"{msg} (got {err['input']!r})"
        lines.append(f"{prefix}: {key}: {msg}")
    return "\n".join(lines)


def _fields_at(root: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the model found by following `loc` from `root` (through dicts, lists and union tags)."""
    model = _unwrap_model(_walk(root, loc)[0])
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _walk(root: type[BaseModel], loc: tuple) -> tuple[Any, set[int]]:
    """(annotation reached by following `loc` from `root`, indices of `loc` that were union tags); None if lost."""
    annotation: Any = root
    tags: set[int] = set()
    for i, part in enumerate(loc):
        annotation = _unwrap_model(annotation)
        if annotation is None:
            return None, tags
        member = _tagged_member(annotation, part)
        if member is not None:  # a discriminated union's tag: continue in the model it selects
            annotation = member
            tags.add(i)
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return None, tags
            annotation = field.annotation
        else:
            args = typing.get_args(annotation)
            annotation = args[-1] if args else None
    return annotation, tags


def _tagged_member(annotation: Any, part: Any) -> type[BaseModel] | None:
    """The model of a union of models whose Literal field (the discriminator) accepts `part`, else None."""
    members = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    if len(members) < 2:
        return None
    for member in members:
        for field in member.model_fields.values():
            if typing.get_origin(field.annotation) is typing.Literal and part in typing.get_args(field.annotation):
                return member
    return None


def _unwrap_model(annotation: Any) -> Any:
    """Optional[X] -> X; leaves containers alone."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation
