"""No SQL in pgqrs_django is built from anything but constant text (docs/security.md).

The test parses every module of the package (migrations included) with ``ast`` and checks:

1. every statement handed to the database (``execute``, ``executemany``, ``raw``, ``extra``,
   ``RawSQL``, ``RunSQL``) is a *constant expression*: a string literal, a module-level name
   (or ``module.NAME`` of another pgqrs module) bound to one, a ``+`` of constant
   expressions, or an f-string interpolating only constant expressions. The sql package
   builds ``CLAIM``, ``ARCHIVE`` and ``ARCHIVE_AND_CLAIM`` from constant pieces that way,
   which is allowed explicitly. A statement that arrives as a function parameter is allowed
   only if every call of that function in the package passes a constant expression for it;
2. no f-string, ``%`` formatting or ``str.format`` whose text looks like SQL interpolates a
   non-constant value anywhere in the package (so SQL cannot be assembled in a variable and
   executed elsewhere).

Values always travel as bound parameters. The checker is itself tested against examples of
each forbidden construction, so this test can fail.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pgqrs_django

PACKAGE = Path(pgqrs_django.__file__).resolve().parent
SINK_METHODS = {"execute", "executemany", "raw", "extra", "mogrify"}
SINK_FUNCTIONS = {"RawSQL", "RunSQL"}
#: Text that reads as SQL (or as a PgBouncer console command), not as prose.
SQL_LIKE = [
    re.compile(pattern, re.DOTALL)
    for pattern in (
        r"\bSELECT\b.*\bFROM\b",
        r"\bINSERT\s+INTO\b",
        r"\bUPDATE\s+\S+\s+SET\b",
        r"\bDELETE\s+FROM\b",
        r"\b(DROP|ALTER|CREATE|TRUNCATE|COMMENT ON)\s+(TABLE|INDEX|SCHEMA|DATABASE|TRIGGER|"
        r"FUNCTION|VIEW|SEQUENCE)\b",
        r"\bWHERE\b.*[=<>]",
        r"\A\s*(SELECT|WITH|LISTEN|NOTIFY|SET|SHOW|KILL|RESUME|PAUSE|VACUUM|ANALYZE|GRANT)\b",
    )
]
#: Functions allowed to send non-constant text, each with the reason. PgBouncer's admin
#: console (a test harness, not the package's runtime) takes no bound parameters; the database
#: name it interpolates is checked against a strict identifier pattern first.
ALLOWED_FUNCTIONS = {
    "testing.pgbouncer:admin": "PgBouncer admin console command, test harness only",
    "testing.pgbouncer:close_server_connections": "database name validated as an identifier",
}


@dataclass
class Module:
    name: str
    tree: ast.Module
    constants: set[str] = field(default_factory=set)
    #: local name -> a module's name, or "module:NAME" for a name imported from it
    imports: dict[str, str] = field(default_factory=dict)


def _module(target: str, modules: dict[str, object]) -> str:
    """The name under which the dotted module ``target`` is parsed (a package is its
    ``__init__``); ``target`` itself when it is not a pgqrs module."""
    package = f"{target}.__init__" if target else "__init__"
    return package if target not in modules and package in modules else target


def _import_target(node: ast.ImportFrom, module: str) -> str:
    """The dotted module (relative to the package) that ``node`` imports from."""
    if node.level:
        base = module.split(".")[:-1]  # the importing module's package
        base = base[: len(base) - (node.level - 1)]
        return ".".join([*base, *(node.module or "").split(".")]).strip(".")
    return (node.module or "").removeprefix("pgqrs_django").lstrip(".")


def parse(modules: dict[str, str]) -> dict[str, Module]:
    """``{module name: source}`` -> parsed modules with their constant names resolved.
    Names are dotted paths in the package (``worker.retry``, ``migrations.0001_initial``);
    a package is ``<name>.__init__``."""
    parsed = {name: Module(name, ast.parse(source)) for name, source in modules.items()}
    for module in parsed.values():
        for node in module.tree.body:
            if isinstance(node, ast.ImportFrom):
                target = _import_target(node, module.name)
                for alias in node.names:
                    # `from . import sql` names a module; `from .sql import X` a constant.
                    local = alias.asname or alias.name
                    submodule = _module(f"{target}.{alias.name}".strip("."), parsed)
                    if submodule in parsed:
                        module.imports[local] = submodule
                    else:
                        module.imports[local] = f"{_module(target, parsed)}:{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    name = alias.name.removeprefix("pgqrs_django").lstrip(".")
                    module.imports[alias.asname or alias.name] = _module(name, parsed)
    changed = True
    while changed:  # constants built from other constants, across modules
        changed = False
        for module in parsed.values():
            for node in module.tree.body:
                targets, value = _assignment(node)
                for target in targets:
                    if target not in module.constants and is_constant(value, module, parsed):
                        module.constants.add(target)
                        changed = True
    return parsed


def _assignment(node: ast.stmt) -> tuple[list[str], ast.expr | None]:
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)], node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id], node.value
    return [], None


def is_constant(node: ast.expr | None, module: Module, modules: dict[str, Module]) -> bool:
    if node is None:
        return False
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.Name):
        if node.id in module.constants:
            return True
        imported = module.imports.get(node.id, "")
        if ":" in imported:
            source, name = imported.split(":")
            return source in modules and name in modules[source].constants
        return False
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        source = module.imports.get(node.value.id, node.value.id)
        return source in modules and node.attr in modules[source].constants
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return is_constant(node.left, module, modules) and is_constant(node.right, module, modules)
    if isinstance(node, ast.JoinedStr):
        return all(
            is_constant(part.value, module, modules)
            if isinstance(part, ast.FormattedValue)
            else True
            for part in node.values
        )
    return False


def _sink_args(call: ast.Call) -> list[ast.expr]:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    receiver = func.value if isinstance(func, ast.Attribute) else None
    is_command = getattr(receiver, "id", "") == "self" or (
        isinstance(receiver, ast.Call) and getattr(receiver.func, "id", "") == "super"
    )
    if is_command and name == "execute":  # BaseCommand.execute (self. or super().), not SQL
        return []
    if (isinstance(func, ast.Attribute) and name in SINK_METHODS) or name in SINK_FUNCTIONS:
        args = list(call.args[:2] if name == "RunSQL" else call.args[:1])
        args += [k.value for k in call.keywords if k.arg in ("sql", "reverse_sql", "query")]
        return args
    return []


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    return {
        node.name: node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def _parameter_calls_constant(
    function: ast.FunctionDef | ast.AsyncFunctionDef, parameter: str, modules: dict[str, Module]
) -> bool:
    """Whether every call of ``function`` in the package passes a constant for
    ``parameter`` (and there is at least one call)."""
    names = [a.arg for a in function.args.posonlyargs + function.args.args]
    position = names.index(parameter) if parameter in names else None
    calls = 0
    for module in modules.values():
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called != function.name:
                continue
            calls += 1
            passed = [k.value for k in node.keywords if k.arg == parameter]
            if position is not None and position < len(node.args):
                passed.append(node.args[position])
            if len(passed) != 1 or not is_constant(passed[0], module, modules):
                return False
    return calls > 0


def _looks_like_sql(node: ast.expr) -> bool:
    if isinstance(node, ast.JoinedStr):
        text = "".join(p.value for p in node.values if isinstance(p, ast.Constant))
    elif isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value
    else:
        return False
    return any(pattern.search(text) for pattern in SQL_LIKE)


def violations(modules: dict[str, str]) -> list[str]:
    """Every place where SQL may be built from non-constant input, as ``module:line: why``."""
    parsed = parse(modules)
    found = []
    for module in parsed.values():
        functions = _functions(module.tree)
        parents: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(module.tree):
            for child in ast.iter_child_nodes(node):
                parents[child] = node
        for node in ast.walk(module.tree):
            if f"{module.name}:{_enclosing_function(node, parents)}" in ALLOWED_FUNCTIONS:
                continue
            where = f"{module.name}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Call):
                for arg in _sink_args(node):
                    if is_constant(arg, module, parsed):
                        continue
                    if isinstance(arg, ast.Name) and _enclosing_parameter(
                        node, arg.id, parents, functions, parsed
                    ):
                        continue
                    found.append(f"{where}: statement is not constant text")
                # "...".format(x) on SQL-looking text
                func = node.func
                if (
                    isinstance(func, ast.Attribute)
                    and func.attr == "format"
                    and _looks_like_sql(func.value)
                    and not all(is_constant(a, module, parsed) for a in node.args)
                ):
                    found.append(f"{where}: SQL built with str.format")
            elif isinstance(node, ast.JoinedStr):
                if _looks_like_sql(node) and not is_constant(node, module, parsed):
                    found.append(f"{where}: SQL built with an f-string")
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
                if _looks_like_sql(node.left) and not is_constant(node.right, module, parsed):
                    found.append(f"{where}: SQL built with % formatting")
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
                sides = (node.left, node.right)
                if any(_looks_like_sql(s) for s in sides) and not all(
                    is_constant(s, module, parsed) for s in sides
                ):
                    found.append(f"{where}: SQL concatenated with a non-constant value")
    return found


def _enclosing_function(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> str:
    current = parents.get(node)
    while current is not None and not isinstance(current, ast.FunctionDef | ast.AsyncFunctionDef):
        current = parents.get(current)
    return current.name if current is not None else ""


def _enclosing_parameter(
    node: ast.AST,
    name: str,
    parents: dict[ast.AST, ast.AST],
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef],
    modules: dict[str, Module],
) -> bool:
    current = parents.get(node)
    while current is not None and not isinstance(current, ast.FunctionDef | ast.AsyncFunctionDef):
        current = parents.get(current)
    if current is None:
        return False
    parameters = [a.arg for a in current.args.posonlyargs + current.args.args]
    parameters += [a.arg for a in current.args.kwonlyargs]
    return name in parameters and _parameter_calls_constant(current, name, modules)


def package_sources() -> dict[str, str]:
    """Every module of the package by its dotted name (see parse())."""
    return {
        ".".join(path.relative_to(PACKAGE).with_suffix("").parts): path.read_text()
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def test_no_sql_is_built_from_non_constant_input_in_the_package() -> None:
    sources = package_sources()
    expected = {"sql.__init__", "sql.claim", "sql.settle", "consumer", "producer", "admin_api"}
    assert expected | {"worker.retry", "notify"} <= set(sources)
    assert violations(sources) == []


def test_sql_builds_its_statements_from_constant_pieces() -> None:
    """The allowed construction, checked explicitly: CLAIM and friends are module constants
    made by concatenating constant pieces, also across the modules of the sql package."""
    modules = parse(package_sources())
    assert {"CLAIM", "CLAIMABLE", "CLAIM_UPDATE"} <= modules["sql.claim"].constants
    assert {"ARCHIVE", "ARCHIVE_AND_CLAIM", "DELETE_HELD"} <= modules["sql.settle"].constants
    assert "INSERT" in modules["sql.enqueue"].constants


FORBIDDEN = {
    "f-string": "def f(c, name):\n    c.execute(f'SELECT * FROM t WHERE name = {name}')\n",
    "percent": "def f(c, name):\n    c.execute('SELECT * FROM t WHERE n = %s' % name)\n",
    "format": "def f(c, name):\n    c.execute('SELECT * FROM {}'.format(name))\n",
    "concat": "def f(c, name):\n    c.execute('SELECT * FROM t WHERE n = ' + name)\n",
    "variable": "def f(c, name):\n    q = 'DELETE FROM t WHERE n = ' + name\n    c.execute(q)\n",
    "built-elsewhere": "Q = 'x'\ndef f(name):\n    return f'UPDATE t SET n = {name}'\n",
    "parameter": "def run(c, q):\n    c.execute(q)\ndef g(c, user):\n    run(c, user)\n",
    "raw": "def f(M, name):\n    return M.objects.raw(f'SELECT * FROM t WHERE {name}')\n",
    "runsql": "from django.db import migrations\nT = input()\nOP = migrations.RunSQL(T)\n",
    "rawsql": "def f(RawSQL, col):\n    return RawSQL('SELECT ' + col, [])\n",
    "mutable-global": "import os\nQ = os.environ['Q']\ndef f(c):\n    c.execute(Q)\n",
}
ALLOWED = {
    "literal": "def f(c, n):\n    c.execute('SELECT * FROM t WHERE n = %s', [n])\n",
    "pieces": "A = 'SELECT 1'\nB = ' WHERE true'\nQ = A + B\ndef f(c):\n    c.execute(Q, {})\n",
    "constant-fstring": "CH = 'pgqrs'\ndef f(c):\n    c.execute(f'LISTEN {CH}')\n",
    "parameter": "Q = 'SELECT 1'\ndef run(c, q):\n    c.execute(q)\ndef g(c):\n    run(c, Q)\n",
    "message": "def f(name):\n    return f'queue {name} does not exist'\n",
}


def test_the_checker_flags_every_forbidden_construction() -> None:
    for label, source in FORBIDDEN.items():
        assert violations({"sample": source}), f"{label} was not flagged"


def test_the_checker_allows_constant_sql() -> None:
    for label, source in ALLOWED.items():
        assert violations({"sample": source}) == [], label
