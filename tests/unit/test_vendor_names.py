"""Only the backends name device vendors' libraries and lanes.

No code in ``npuprofile/`` outside ``backends/`` (and the deprecated
``adapters/`` shims) names torch_npu, Ascend, HCCL, NCCL, NVTX or mstx in an
identifier or a string. Documentation is exempt: docstrings (and other bare
string statements), comments (not in the AST), and CLI help text (the
``help=``, ``description=`` and ``epilog=`` strings of argparse calls, and a
command module's ``HELP``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Iterator

import npuprofile

VENDOR = re.compile(r"torch_npu|ascend|hccl|nccl|nvtx|mstx", re.IGNORECASE)
PACKAGE = Path(npuprofile.__file__).parent
EXEMPT = ("backends", "adapters")
_ARGPARSE_CALLS = {"ArgumentParser", "add_argument", "add_parser", "add_subparsers", "add_argument_group",
                   "add_mutually_exclusive_group"}
_HELP_KEYWORDS = {"help", "description", "epilog"}

def vendor_names(source: str, *, command_module: bool = False) -> list[tuple[int, str]]:
    """``(line, text)`` of every identifier or non-documentation string in ``source`` that names a vendor.

    ``command_module``: ``source`` is a CLI command module, whose module-level ``HELP`` is help text.
    """
    tree = ast.parse(source)
    exempt = _documentation(tree, command_module)
    found: list[tuple[int, str]] = []
    for node in _walk(tree, exempt):
        for text in _names_in(node):
            if VENDOR.search(text):
                found.append((getattr(node, "lineno", 0), text))
    return found


def _documentation(tree: ast.Module, command_module: bool) -> set[int]:
    exempt: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            exempt.add(id(node))  # a docstring, or another bare string statement: documentation only
        elif isinstance(node, ast.Call) and _called_name(node.func) in _ARGPARSE_CALLS:
            exempt.update(id(keyword.value) for keyword in node.keywords if keyword.arg in _HELP_KEYWORDS)
    if command_module:
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "HELP" for t in node.targets):
                exempt.add(id(node.value))
    return exempt


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _walk(node: ast.AST, exempt: set[int]) -> Iterator[ast.AST]:
    if id(node) in exempt:
        return
    yield node
    for child in ast.iter_child_nodes(node):
        yield from _walk(child, exempt)


def _names_in(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.arg):
        return [node.arg]
    if isinstance(node, ast.keyword) and node.arg is not None:
        return [node.arg]
    if isinstance(node, ast.alias):
        return [node.name, *([node.asname] if node.asname else [])]
    if isinstance(node, ast.ImportFrom) and node.module:
        return [node.module]
    if isinstance(node, (ast.Global, ast.Nonlocal)):
        return list(node.names)
    return []


def _package_files() -> list[Path]:
    return [
        path for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] not in EXEMPT
    ]


def test_no_code_outside_the_backends_names_a_vendor() -> None:
    files = _package_files()
    assert len(files) > 30, "the package sources were not found"
    offenders: list[str] = []
    for path in files:
        relative = path.relative_to(PACKAGE).as_posix()
        command_module = relative.startswith("cli/commands/")
        for line, text in vendor_names(path.read_text(encoding="utf-8"), command_module=command_module):
            offenders.append(f"{relative}:{line}: {text!r}")
    assert offenders == []


def test_the_checker_finds_identifiers_strings_and_imports() -> None:
    source = '''
"""Module docstring naming torch_npu and NVTX is documentation."""
import torch_npu
from torch_npu.profiler import profile
import torch.cuda.nvtx as marks

LANES = ("GPU", "HCCL")  # a comment naming mstx is not in the AST


class AscendThing:
    """Class docstring: Ascend."""

    def run(self, use_nvtx=False):
        """Function docstring: NCCL."""
        label = f"rank {self} on ascend"
        return self.mstx, dict(nccl_group=1)
'''
    found = vendor_names(source)
    texts = [text for _, text in found]
    assert texts == ["torch_npu", "torch_npu.profiler", "torch.cuda.nvtx", "HCCL", "AscendThing", "use_nvtx",
                     " on ascend", "mstx", "nccl_group"]
    assert [line for line, _ in found][:2] == [3, 4]


def test_help_text_is_exempt_but_other_arguments_are_not() -> None:
    source = '''
import argparse
HELP = "analyze directories (needs torch_npu)"
parser = argparse.ArgumentParser(description="Profile on Ascend NPU.")
parser.add_argument("dir", help="a *_ascend_pt directory", metavar="ASCEND_DIR")
sub = parser.add_subparsers()
sub.add_parser("x", help=HELP, description=f"uses {'HCCL'}")
other(help="NCCL")
'''
    in_command = [text for _, text in vendor_names(source, command_module=True)]
    assert in_command == ["ASCEND_DIR", "NCCL"]
    elsewhere = [text for _, text in vendor_names(source)]
    assert elsewhere == ["analyze directories (needs torch_npu)", "ASCEND_DIR", "NCCL"]
