"""Read a package's Python API out of a wheel with ``ast``, without importing anything.

Used by the torch_npu contract test: it resolves dotted names the way Python
would (``from x import y as z``, relative imports, star imports, class
attributes and bases), evaluates string and integer constants, and reads
callable signatures. Names provided by compiled extension modules resolve to
:data:`NATIVE` (their members cannot be read from sources).
"""

from __future__ import annotations

import ast
import dataclasses
import zipfile
from pathlib import Path
from typing import Any

NATIVE = "native"


@dataclasses.dataclass(frozen=True)
class Found:
    """What a dotted name resolved to."""

    kind: str  # "module", "class", "function", "value", "native"
    module: str
    node: Any = None


@dataclasses.dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "positional_only", "positional_or_keyword", "keyword_only", "var_positional", "var_keyword"
    default: Any = None


class WheelApi:
    """The Python sources of one wheel, indexed by module name."""

    def __init__(self, wheel: Path) -> None:
        self.wheel = wheel
        self._sources: dict[str, str] = {}
        self._trees: dict[str, ast.Module] = {}
        self.native: set[str] = set()
        self.packages: set[str] = set()
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if name.endswith(".py"):
                    module = name[:-3].replace("/", ".")
                    if module.endswith(".__init__"):
                        module = module[: -len(".__init__")]
                        self.packages.add(module)
                    self._sources[module] = archive.read(name).decode("utf-8", "replace")
                elif name.endswith(".so") or ".so." in name:
                    stem = name.split("/")
                    stem[-1] = stem[-1].split(".")[0]
                    self.native.add(".".join(stem))

    # -- modules ----------------------------------------------------------------------
    def has_module(self, module: str) -> bool:
        return module in self._sources

    def tree(self, module: str) -> ast.Module:
        if module not in self._trees:
            self._trees[module] = ast.parse(self._sources[module], filename=module)
        return self._trees[module]

    def _is_native(self, module: str) -> bool:
        parts = module.split(".")
        return any(".".join(parts[:i]) in self.native for i in range(1, len(parts) + 1))

    def _absolute(self, module: str, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        package = module if module in self.packages else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        return f"{package}.{node.module}" if node.module else package

    # -- resolving names ------------------------------------------------------------------
    def resolve(self, dotted: str) -> Found | None:
        """Resolve ``a.b.c`` starting from top-level package ``a``; ``None`` when it does not exist."""
        parts = dotted.split(".")
        if not self.has_module(parts[0]):
            return None
        found: Found | None = Found("module", parts[0])
        for part in parts[1:]:
            found = self._member(found, part) if found is not None else None
        return found

    def _member(self, found: Found, name: str) -> Found | None:
        if found.kind == NATIVE:
            return found
        if found.kind == "module":
            return self._in_module(found.module, name)
        if found.kind == "class":
            return self._in_class(found.module, found.node, name)
        return None

    def _in_module(self, module: str, name: str, seen: frozenset[str] = frozenset()) -> Found | None:
        key = f"{module}:{name}"
        if key in seen:
            return None
        seen = seen | {key}
        if self._is_native(module) and not self.has_module(module):
            return Found(NATIVE, module)
        if not self.has_module(module):
            return None
        hit: Found | None = None
        for statement in _top_level(self.tree(module)):
            result = self._binding(module, statement, name, seen)
            if result is not None:
                hit = result  # the last binding wins, as at run time
        if hit is None and self.has_module(f"{module}.{name}"):
            hit = Found("module", f"{module}.{name}")
        if hit is None and self._is_native(f"{module}.{name}"):
            hit = Found(NATIVE, f"{module}.{name}")
        return hit

    def _binding(self, module: str, statement: ast.stmt, name: str, seen: frozenset[str]) -> Found | None:
        if isinstance(statement, ast.ClassDef) and statement.name == name:
            return Found("class", module, statement)
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)) and statement.name == name:
            return Found("function", module, statement)
        value = _assigned_value(statement, name)
        if value is not None:
            return Found("value", module, value)
        if isinstance(statement, ast.ImportFrom):
            source = self._absolute(module, statement)
            for alias in statement.names:
                if alias.name == "*":
                    if self.has_module(source):
                        star = self._in_module(source, name, seen)
                        if star is not None and star.kind != "module":
                            return star
                    continue
                if (alias.asname or alias.name) != name:
                    continue
                if self.has_module(f"{source}.{alias.name}"):
                    return Found("module", f"{source}.{alias.name}")
                return self._in_module(source, alias.name, seen)
        return None

    def _in_class(self, module: str, node: ast.ClassDef, name: str) -> Found | None:
        for statement in node.body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)) and statement.name == name:
                return Found("function", module, statement)
            if isinstance(statement, ast.ClassDef) and statement.name == name:
                return Found("class", module, statement)
            value = _assigned_value(statement, name)
            if value is not None:
                return Found("value", module, value)
        for base in node.bases:
            parent = self._expression(module, base)
            if parent is not None and parent.kind == NATIVE:
                return parent
            if parent is not None and parent.kind == "class":
                hit = self._in_class(parent.module, parent.node, name)
                if hit is not None:
                    return hit
        return None

    def _expression(self, module: str, node: ast.expr) -> Found | None:
        if isinstance(node, ast.Name):
            return self._in_module(module, node.id)
        if isinstance(node, ast.Attribute):
            owner = self._expression(module, node.value)
            return self._member(owner, node.attr) if owner is not None else None
        return None

    # -- values and signatures ------------------------------------------------------------------
    def value(self, found: Found) -> Any:
        """The constant a ``value`` resolves to (following names); raises ``LookupError`` if not constant."""
        node = found.node
        for _ in range(20):
            if isinstance(node, ast.Constant):
                return node.value
            target = self._expression(found.module, node) if isinstance(node, ast.expr) else None
            if target is None or target.kind != "value":
                break
            found, node = target, target.node
        raise LookupError(f"not a constant: {ast.dump(node) if isinstance(node, ast.AST) else node!r}")

    def params(self, found: Found) -> list[Param] | None:
        """Parameters of a function, or of a class's ``__init__``/``__new__`` (``None`` if unreadable)."""
        if found.kind == "class":
            for method in ("__init__", "__new__"):
                init = self._in_class(found.module, found.node, method)
                if init is not None and init.kind == "function":
                    return _params(init.node, drop_first=True)
            return None
        if found.kind == "function":
            node = found.node
            static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list)
            first = node.args.posonlyargs + node.args.args
            method = bool(first) and first[0].arg in ("self", "cls") and not static
            return _params(node, drop_first=method)
        return None


def _top_level(tree: ast.Module) -> list[ast.stmt]:
    """Module statements, including those inside top-level ``if``/``try`` blocks."""
    out: list[ast.stmt] = []
    for statement in tree.body:
        out.append(statement)
        if isinstance(statement, ast.If):
            out.extend(statement.body + statement.orelse)
        elif isinstance(statement, ast.Try):
            out.extend(statement.body + statement.orelse + statement.finalbody)
            for handler in statement.handlers:
                out.extend(handler.body)
    return out


def _params(node: ast.FunctionDef | ast.AsyncFunctionDef, drop_first: bool) -> list[Param]:
    args = node.args
    positional = [(a, "positional_only") for a in args.posonlyargs] + [(a, "positional_or_keyword") for a in args.args]
    defaults: list[Any] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    params = [Param(a.arg, kind, d) for (a, kind), d in zip(positional, defaults)]
    if drop_first and params:
        params = params[1:]
    if args.vararg is not None:
        params.append(Param(args.vararg.arg, "var_positional"))
    params += [Param(a.arg, "keyword_only", d) for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    if args.kwarg is not None:
        params.append(Param(args.kwarg.arg, "var_keyword"))
    return params


def _assigned_value(statement: ast.stmt, name: str) -> ast.expr | None:
    """The expression ``statement`` assigns to ``name`` (plain or annotated assignment), if any."""
    if isinstance(statement, ast.Assign):
        if any(isinstance(t, ast.Name) and t.id == name for t in statement.targets):
            return statement.value
    if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
        if statement.target.id == name and statement.value is not None:
            return statement.value
    return None
