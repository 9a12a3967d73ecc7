"""No SQL in the API is built from variables: statements are constants in queries.py with $n parameters."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

CHALICELIB = Path(__file__).resolve().parents[2] / "api_chalice" / "chalicelib"
# The shapes of SQL statements (case-insensitive), not single words that prose uses too.
SQL_SHAPES = re.compile(r"\bselect\b[\s\S]*\bfrom\b|\binsert\s+into\b|\bupdate\s+\w+\s+set\b|\bdelete\s+from\b"
                        r"|\bexplain\s*\(|\bwhere\s+\"?\w+\"?\s*(=|<|>|in\b)", re.IGNORECASE)
# Calls whose first argument is SQL text.
SQL_CALLS = {"fetch", "fetchrow", "fetchval", "execute", "executemany", "copy_records_to_table", "cursor",
             "prepare"}


def _looks_like_sql(text: str) -> bool:
    return bool(SQL_SHAPES.search(text))


def _const_text(node: ast.AST) -> str:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""


def sql_built_from_variables(source: str) -> list[str]:
    """Places where SQL-looking text is formatted or concatenated with something not constant."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", "?")
        if isinstance(node, ast.JoinedStr):
            literal = "".join(_const_text(v) for v in node.values)
            if _looks_like_sql(literal) and any(isinstance(v, ast.FormattedValue) for v in node.values):
                problems.append(f"line {line}: f-string SQL")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
            if _looks_like_sql(_const_text(node.func.value)):
                problems.append(f"line {line}: str.format SQL")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            if _looks_like_sql(_const_text(node.left)):
                problems.append(f"line {line}: %-formatted SQL")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            sides = (node.left, node.right)
            constant = all(isinstance(s, ast.Constant) for s in sides)
            if any(_looks_like_sql(_const_text(s)) for s in sides) and not constant:
                problems.append(f"line {line}: SQL concatenated with a variable")
    return problems


def _is_reference(node: ast.AST) -> bool:
    """A name or attribute (queries.X, kind.desc_sql), or a choice between such: nothing computed."""
    if isinstance(node, ast.IfExp):
        return _is_reference(node.body) and _is_reference(node.orelse)
    return isinstance(node, (ast.Name, ast.Attribute))


def sql_calls_not_from_queries(source: str) -> list[str]:
    """Database calls whose statement is computed or written inline instead of referring to a constant."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_CALLS:
            if node.args and not _is_reference(node.args[0]):
                problems.append(f"line {node.lineno}: {node.func.attr}() with {ast.unparse(node.args[0])}")
    return problems


def sql_constants_used(source: str) -> set[str]:
    return {n.attr for n in ast.walk(ast.parse(source))
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "queries"}


def test_the_scanner_catches_sql_built_from_variables():
    bad = '''
sym = "ES"
a = f"SELECT * FROM tick_data WHERE symbol = '{sym}'"
b = "SELECT * FROM tick_data WHERE symbol = '{}'".format(sym)
c = "SELECT * FROM tick_data WHERE symbol = '%s'" % sym
d = "SELECT * FROM tick_data WHERE symbol = '" + sym + "'"
'''
    assert len(sql_built_from_variables(bad)) == 4
    good = 'A = "SELECT * FROM tick_data WHERE symbol = $1"\nB = f"limit must be {n}"\n'
    assert sql_built_from_variables(good) == []
    assert sql_calls_not_from_queries(
        "conn.fetch('SELECT 1', 1)\nconn.fetch(queries.TICKS_DESC, 1)\nconn.fetch(a + b)\nconn.fetch(x if c else y)\n"
    ) == ["line 1: fetch() with 'SELECT 1'", "line 3: fetch() with a + b"]


def test_chalicelib_builds_no_sql_from_variables():
    files = sorted(CHALICELIB.glob("*.py"))
    assert len(files) >= 10, "chalicelib not found"
    problems = [f"{f.name} {p}" for f in files for p in sql_built_from_variables(f.read_text())]
    assert problems == []


def test_every_statement_is_a_plain_constant_of_queries():
    problems = [f"{f.name} {p}" for f in sorted(CHALICELIB.glob("*.py"))
                for p in sql_calls_not_from_queries(f.read_text())]
    assert problems == []
    tree = ast.parse((CHALICELIB / "queries.py").read_text())
    constants = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            assert isinstance(node.value, ast.Constant) and isinstance(node.value.value, str), \
                f"queries.py line {node.lineno}: not a plain string constant"
            constants.update(t.id for t in node.targets)
    used = set().union(*(sql_constants_used(f.read_text()) for f in CHALICELIB.glob("*.py")))
    # Every statement the code names exists (and none is dead text waiting to be misused).
    assert used == constants
