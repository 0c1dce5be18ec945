"""Static analysis of Julia source with tree-sitter-julia (no Julia needed): which names a
file imports, defines, calls and references qualified.  Coarse on purpose — a name counts as
defined if it is bound anywhere in the file (function, assignment, parameter, loop or catch
variable, ``where`` type parameter) — so the check it supports is "every called name is
declared somewhere", not Julia's scoping rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import tree_sitter
import tree_sitter_julia

_PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_julia.language()))


def parse(source: bytes | str) -> tree_sitter.Tree:
    return _PARSER.parse(source.encode() if isinstance(source, str) else source)


def error_nodes(tree: tree_sitter.Tree) -> list[tuple[tuple[int, int], str]]:
    """``(row, column), text`` of every ERROR or missing node (empty when the parse is clean)."""
    out: list[tuple[tuple[int, int], str]] = []

    def walk(n: tree_sitter.Node) -> None:
        if n.type == "ERROR" or n.is_missing:
            out.append((n.start_point, n.text.decode(errors="replace")[:60]))
        for c in n.children:
            walk(c)

    walk(tree.root_node)
    return out


@dataclass
class Names:
    imports: set[str] = field(default_factory=set)        # modules named in import/using
    selected: set[str] = field(default_factory=set)       # names from `using M: a, b`
    exports: set[str] = field(default_factory=set)
    defined: set[str] = field(default_factory=set)
    calls: set[str] = field(default_factory=set)          # bare callee names
    isa_types: set[str] = field(default_factory=set)      # right-hand sides of `isa`
    qualified: set[tuple[str, str]] = field(default_factory=set)   # (Module, name) references
    macros: set[str] = field(default_factory=set)


def _text(n: tree_sitter.Node) -> str:
    return n.text.decode()


def _bind_target(n: tree_sitter.Node, names: Names) -> None:
    """Record the names bound by a left-hand side / parameter ``n``."""
    t = n.type
    if t == "identifier":
        names.defined.add(_text(n))
    elif t in ("typed_expression", "named_argument", "splat_expression"):
        if n.named_children:
            _bind_target(n.named_children[0], names)
    elif t in ("tuple_expression", "open_tuple", "argument_list"):
        for c in n.named_children:
            _bind_target(c, names)
    elif t == "where_expression":
        _bind_signature(n.named_children[0], names)
        for c in n.named_children[1:]:
            if c.type == "curly_expression":
                for tp in c.named_children:
                    _bind_target(tp, names)
    elif t == "call_expression":
        _bind_signature(n, names)


def _bind_signature(call: tree_sitter.Node, names: Names) -> None:
    """A definition signature ``f(a, b::T; k = 1)`` (or ``where`` around it)."""
    if call.type == "where_expression":
        _bind_target(call, names)
        return
    if call.type != "call_expression" or not call.named_children:
        return
    callee = call.named_children[0]
    if callee.type == "identifier":
        names.defined.add(_text(callee))
    for c in call.named_children[1:]:
        if c.type == "argument_list":
            for arg in c.named_children:
                _bind_target(arg, names)


def analyse(source: bytes | str) -> Names:
    tree = parse(source)
    names = Names()

    def walk(n: tree_sitter.Node) -> None:
        t = n.type
        if t in ("import_statement", "using_statement"):
            for c in n.named_children:
                if c.type == "identifier":
                    names.imports.add(_text(c))
                elif c.type == "selected_import":
                    ids = [x for x in c.named_children if x.type == "identifier"]
                    if ids:
                        names.imports.add(_text(ids[0]))
                        names.selected.update(_text(x) for x in ids[1:])
            return
        if t == "export_statement":
            names.exports.update(_text(c) for c in n.named_children if c.type == "identifier")
            return
        if t == "module_definition":
            ids = [c for c in n.named_children if c.type == "identifier"]
            if ids:
                names.defined.add(_text(ids[0]))
        if t == "function_definition":
            for c in n.named_children:
                if c.type == "signature":
                    for s in c.named_children:
                        _bind_signature(s, names)
        if t == "assignment" and n.named_children:
            _bind_target(n.named_children[0], names)
        if t == "for_binding" and n.named_children:
            _bind_target(n.named_children[0], names)
        if t == "catch_clause":
            ids = [c for c in n.named_children if c.type == "identifier"]
            if ids:
                names.defined.add(_text(ids[0]))
        if t == "arrow_function_expression" and n.named_children:
            _bind_target(n.named_children[0], names)
        if t in ("call_expression", "broadcast_call_expression") and n.named_children:
            callee = n.named_children[0]
            if callee.type == "identifier":
                names.calls.add(_text(callee))
            elif callee.type == "parametrized_type_expression" and callee.named_children:
                names.calls.add(_text(callee.named_children[0]))
            elif callee.type == "index_expression" and callee.named_children:
                root = callee.named_children[0]
                if root.type == "identifier":
                    names.calls.add(_text(root))
        if t == "macrocall_expression" and n.named_children:
            ident = n.named_children[0]
            if ident.type == "macro_identifier":
                names.macros.add(_text(ident).lstrip("@"))
        if t == "binary_expression" and len(n.children) == 3 and _text(n.children[1]) == "isa":
            rhs = n.children[2]
            if rhs.type == "identifier":
                names.isa_types.add(_text(rhs))
        if t == "field_expression" and len(n.named_children) == 2:
            root, member = n.named_children
            if root.type == "identifier" and member.type == "identifier":
                names.qualified.add((_text(root), _text(member)))
        for c in n.children:
            walk(c)

    walk(tree.root_node)
    return names


def julia_files(root: Path) -> list[Path]:
    """Every ``*.jl`` file of the repository (links followed once, duplicates dropped)."""
    seen: dict[Path, Path] = {}
    for path in sorted(root.rglob("*.jl")):
        if any(part.startswith(".") or part in ("build", "dist", "node_modules") for part in path.parts):
            continue
        seen.setdefault(path.resolve(), path)
    return list(seen.values())
