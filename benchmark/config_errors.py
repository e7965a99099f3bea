"""Pydantic validation errors as one line per problem: `file: dotted.key: problem (got VALUE; allowed: ...)`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError


def format_validation_error(exc: ValidationError, root: type[BaseModel], prefix: str) -> str:
    """Pydantic errors as `prefix: dotted.path: problem (got VALUE; allowed: ...)`, one per line."""
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
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
    """Field names of the model found by following `loc` from `root` (through dicts and lists)."""
    import typing

    annotation: Any = root
    for part in loc:
        annotation = _unwrap_model(annotation)
        if annotation is None:
            return []
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return []
            annotation = field.annotation
        else:
            args = typing.get_args(annotation)
            annotation = args[-1] if args else None
    model = _unwrap_model(annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _unwrap_model(annotation: Any) -> Any:
    """Optional[X] -> X; leaves containers alone."""
    import types
    import typing

    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation
