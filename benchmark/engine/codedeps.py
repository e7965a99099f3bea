"""The package files a command runs, computed from its imports, so each DVC stage depends on exactly its code.

`closure(roots)` follows every `import` of the package (module level and inside functions; `if TYPE_CHECKING:`
blocks excluded) from the root modules, adding each imported module's parent packages (`__init__.py` runs first).
Two places are read differently, on purpose:

- `benchmark/cli.py` contributes only its module-level imports: a stage runs one verb, and the other verbs'
  implementations are imported inside their own `cmd_*` functions (and their parsers only when asked for).
- Fusion method files (`models/fusion/<name>.py`) are imported by the registry's discovery (`importlib`), which no
  static reading sees: a stage that builds a model adds the one file that registers its method (`method_file`). The
  other method files register names only, so adding `models/fusion/<new>.py` changes no existing stage.

tests/test_codedeps.py runs real stages and checks that every package module they import is listed.
"""

from __future__ import annotations

import ast
import hashlib
import re
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = {"asymfusion.benchmark": "benchmark", "asymfusion.models": "models", "asymfusion.datasets": "datasets"}
SHALLOW = {"asymfusion.benchmark.cli"}
FUSION_DIR = "models/fusion"
# Packages whose registry imports all their modules (tasks: two small files, so every stage lists both). The fusion
# package discovers its methods too, but a stage lists only the method file it uses (stage_code).
DISCOVERING = {"asymfusion.benchmark.tasks": "benchmark/tasks"}

# Root modules of each verb a DVC stage runs (besides the CLI itself).
ENTRY_POINTS: dict[str, list[str]] = {
    "train": ["asymfusion.benchmark.engine.launch"],
    "evaluate": ["asymfusion.benchmark.engine.evaluate"],
    "tables": ["asymfusion.benchmark.report.tables"],
    "plots": ["asymfusion.benchmark.report.plots"],
    "report": ["asymfusion.benchmark.report.readme"],
    "bench": ["asymfusion.benchmark.perf.bench"],
    "tune": ["asymfusion.benchmark.tune.study"],
    "show": ["asymfusion.datasets.show"],
    "prepare-synthetic": ["asymfusion.datasets.synthetic", "asymfusion.datasets.commands"],
    "fetch": ["asymfusion.datasets.commands", "asymfusion.datasets.fetch"],
    "prepare": ["asymfusion.datasets.commands"],
    "prepare-hha": ["asymfusion.datasets.commands", "asymfusion.datasets.prepare.hha"],
    "standins": ["asymfusion.datasets.commands", "asymfusion.datasets.standins"],
    "pipeline": ["asymfusion.benchmark.pipeline.stages"],
}
CLI = "asymfusion.benchmark.cli"


def module_path(module: str, root: Path = REPO) -> Path | None:
    """`asymfusion.models.fusion.ops` -> models/fusion/ops.py (relative to `root`); None outside the package."""
    for prefix, folder in PACKAGE_DIRS.items():
        if module == prefix or module.startswith(prefix + "."):
            rel = Path(folder, *module[len(prefix):].lstrip(".").split(".")) if module != prefix else Path(folder)
            for candidate in (rel.with_suffix(".py") if module != prefix else None, rel / "__init__.py"):
                if candidate is not None and (root / candidate).is_file():
                    return candidate
            return None
    return None


def _is_package(module: str, root: Path) -> bool:
    path = module_path(module, root)
    return path is not None and path.name == "__init__.py"


def _type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _import_nodes(tree: ast.Module, shallow: bool) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking_block(child):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(child)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                if not shallow:
                    visit(child, False)
            else:
                visit(child, top)

    visit(tree, True)
    return found


@lru_cache(maxsize=None)
def _imports_cached(module: str, root: Path, shallow: bool, mtime: float) -> tuple[str, ...]:
    path = root / module_path(module, root)
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in _import_nodes(tree, shallow):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        if node.level:
            base_parts = package.split(".")
            base = ".".join(base_parts[: len(base_parts) - node.level + 1])
            target = f"{base}.{node.module}" if node.module else base
        else:
            target = node.module or ""
        names.add(target)
        lazy = _lazy_exports(target, root) if _is_package(target, root) else {}
        for alias in node.names:  # `from pkg import submodule` imports the submodule
            if module_path(f"{target}.{alias.name}", root) is not None:
                names.add(f"{target}.{alias.name}")
            elif alias.name in lazy:  # a name the package loads on first use (module __getattr__)
                names.add(lazy[alias.name])
    return tuple(sorted(n for n in names if module_path(n, root) is not None))


@lru_cache(maxsize=None)
def _lazy_exports(package: str, root: Path) -> dict[str, str]:
    """name -> module for the names a package's __init__ declares under TYPE_CHECKING and loads lazily through a
    module-level __getattr__ (models/__init__.py, datasets/__init__.py): `from pkg import name` runs that module."""
    path = root / module_path(package, root)
    tree = ast.parse(path.read_text(), filename=str(path))
    lazy = any((isinstance(n, ast.FunctionDef) and n.name == "__getattr__") or
               (isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "__getattr__" for t in n.targets))
               for n in tree.body)
    if not lazy:
        return {}
    out: dict[str, str] = {}
    for block in (n for n in tree.body if _type_checking_block(n)):
        for node in block.body:
            if isinstance(node, ast.ImportFrom):
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1]) if node.level else ""
                source = f"{base}.{node.module}" if node.level and node.module else (node.module or base)
                out.update({alias.asname or alias.name: source for alias in node.names})
    return out


def imports_of(module: str, root: Path = REPO, shallow: bool = False) -> tuple[str, ...]:
    """Package modules that `module` imports (absolute names)."""
    path = root / module_path(module, root)
    return _imports_cached(module, root, shallow, path.stat().st_mtime_ns)


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts))]


def closure(roots: list[str], root: Path = REPO) -> list[str]:
    """Files (relative to `root`, sorted) of the root modules and everything they import from the package."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        if module in seen or module_path(module, root) is None:
            continue
        seen.add(module)
        if module in DISCOVERING:  # its registry imports every module of the package on first use
            todo += [f"{module}.{p.stem}" for p in sorted((root / DISCOVERING[module]).glob("*.py"))]
        todo += _parents(module)
        todo += imports_of(module, root, shallow=module in SHALLOW)
    return sorted(str(module_path(m, root)) for m in seen)


_REGISTER_RE = re.compile(r"""@register_fusion\(\s*["']([^"']+)["']""")


def method_file(method: str, root: Path = REPO) -> str:
    """The file under models/fusion/ whose `@register_fusion("<method>")` registers `method`; for a method
    registered from elsewhere (a user's module imported before the config is read), its class's source file."""
    for path in sorted((root / FUSION_DIR).glob("*.py")):
        if method in _REGISTER_RE.findall(path.read_text()):
            return str(path.relative_to(root))
    import inspect

    from asymfusion.models.fusion.registry import registered_class

    cls = registered_class(method)
    source = inspect.getsourcefile(cls) if cls is not None else None
    if source is None:
        raise ValueError(f"no file under {FUSION_DIR}/ registers fusion method {method!r}")
    source_path = Path(source).resolve()
    return str(source_path.relative_to(root)) if source_path.is_relative_to(root) else str(source_path)


def stage_code(verb: str, methods: list[str] = (), root: Path = REPO) -> list[str]:
    """The files a `asymfusion <verb>` stage runs: the CLI, the verb's modules, and the used method files."""
    # Every verb validates params.yaml, whose model sections go through the registry's discovery: each method file
    # it imports pulls in fusion/base.py, so that file is part of every stage (the method files are not).
    # cli.py imports the configuration inside its commands, so the config package is named here.
    roots = [CLI, "asymfusion.benchmark.config", "asymfusion.models.fusion.base", *ENTRY_POINTS[verb]]
    files = set(closure(roots, root))
    for method in methods:
        path = method_file(method, root)
        files.add(path)
        if path.partition("/")[0] in PACKAGE_DIRS.values():
            files.update(closure([_module_name(path)], root))
    return sorted(files)


def _module_name(path: str) -> str:
    folder, _, rest = path.partition("/")
    prefix = next(p for p, f in PACKAGE_DIRS.items() if f == folder)
    return f"{prefix}.{rest[:-3].replace('/', '.')}".removesuffix(".__init__")


def semantic_source(path: Path) -> bytes:
    """What a file runs, without what it says: its syntax tree with docstrings dropped (comments and layout never
    reach the tree), so rewording a docstring or a comment, or re-wrapping a line, reruns no stage."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False).encode()


def fingerprint(files: list[str], root: Path = REPO) -> dict[str, str]:
    """file -> sha256 of its semantic source (`semantic_source`): the spec files DVC watches change with the code
    a stage runs, not with its documentation."""
    return {f: hashlib.sha256(semantic_source(root / f)).hexdigest()[:16] for f in files}


def code_hash(files: list[str], root: Path = REPO) -> str:
    """One hash over the files and their contents: stored in checkpoints to notice a code change."""
    digest = hashlib.sha256()
    for name, value in sorted(fingerprint(files, root).items()):
        digest.update(f"{name}={value}\n".encode())
    return digest.hexdigest()[:16]
