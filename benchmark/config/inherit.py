"""`base:` inheritance of experiments, so params.yaml needs no YAML anchors (docs/design.md §8b).

An experiment (or a recipe: a named partial experiment under `recipes:`, never run) may name a `base:` — a recipe
or another experiment. Its section is the base's section with its own keys merged on top: mappings merge key by
key, anything else (lists, scalars) replaces. Bases chain; a cycle or an unknown name is a configuration error.

Why not anchors: `dvc exp run -S key=value` rewrites params.yaml and expands every anchor and merge key, so one
changed value became a 634-line diff. With `base:` the file keeps its shape and `-S` changes one line.
"""

from __future__ import annotations

import difflib
from typing import Any

BASE_KEY = "base"


class InheritanceError(ValueError):
    """A `base:` names nothing, forms a cycle, or is not a string."""


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` on top of `base`: nested mappings merge, every other value replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def base_chain(name: str, section: str, recipes: dict[str, Any], experiments: dict[str, Any],
               source: str = "params.yaml") -> list[tuple[str, str]]:
    """[(section, name), ...] from `name` up to its root base; the first entry is `name` itself."""
    chain = [(section, name)]
    seen = {name: section}
    entry = (recipes if section == "recipes" else experiments)[name]
    while isinstance(entry, dict) and BASE_KEY in entry:
        base = entry[BASE_KEY]
        where = f"{source}: {chain[-1][0]}.{chain[-1][1]}.{BASE_KEY}"
        if not isinstance(base, str):
            raise InheritanceError(f"{where}: must be the name of a recipe or an experiment (got {base!r})")
        if base in recipes:
            parent_section = "recipes"
        elif base in experiments:
            parent_section = "experiments"
        else:
            names = [n for n in [*recipes, *experiments] if n != chain[-1][1]]
            close = difflib.get_close_matches(base, names, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"recipes: {', '.join(recipes) or '(none)'}"
            raise InheritanceError(f"{where}: {base!r} is not defined as a recipe or an experiment; {hint}")
        if base in seen:
            cycle = " -> ".join([n for _, n in chain] + [base])
            raise InheritanceError(f"{where}: inheritance cycle {cycle}")
        seen[base] = parent_section
        chain.append((parent_section, base))
        entry = (recipes if parent_section == "recipes" else experiments)[base]
    return chain


def resolve_section(name: str, section: str, recipes: dict[str, Any], experiments: dict[str, Any],
                    source: str = "params.yaml") -> dict[str, Any]:
    """The section with every base merged in, root first; `base` itself removed."""
    merged: dict[str, Any] = {}
    for sec, entry_name in reversed(base_chain(name, section, recipes, experiments, source)):
        entry = (recipes if sec == "recipes" else experiments)[entry_name]
        if not isinstance(entry, dict):
            raise InheritanceError(f"{source}: {sec}.{entry_name}: must be a mapping (got {entry!r})")
        merged = deep_merge(merged, {k: v for k, v in entry.items() if k != BASE_KEY})
    return merged


def resolve_experiments(raw: dict[str, Any], source: str = "params.yaml") -> dict[str, Any]:
    """The raw params with `recipes:` consumed and every experiment's bases merged in."""
    recipes = raw.get("recipes") or {}
    experiments = raw.get("experiments") or {}
    if not isinstance(recipes, dict):
        raise InheritanceError(f"{source}: recipes: must be a mapping of name -> partial experiment")
    if not isinstance(experiments, dict):
        raise InheritanceError(f"{source}: experiments: must be a mapping of name -> experiment")
    clash = sorted(set(recipes) & set(experiments))
    if clash:
        raise InheritanceError(f"{source}: recipes and experiments share the name(s) {clash}; a base must be "
                               "unambiguous")
    out = {k: v for k, v in raw.items() if k != "recipes"}
    out["experiments"] = {name: resolve_section(name, "experiments", recipes, experiments, source)
                          for name in experiments}
    for name in recipes:  # a recipe nobody uses must still be well-formed
        resolve_section(name, "recipes", recipes, experiments, source)
    return out


def lineage(raw: dict[str, Any], experiment: str) -> list[str]:
    """Dotted params keys whose values make up `experiment`: its own section and every base's, nearest first."""
    recipes = raw.get("recipes") or {}
    experiments = raw.get("experiments") or {}
    return [f"{sec}.{name}" for sec, name in base_chain(experiment, "experiments", recipes, experiments)]
