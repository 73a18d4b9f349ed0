"""No pickle, no eval, no exec — anywhere. Ruff enforces it in `make lint` (pyproject selects S301, S307,
S102); these tests check that the selection is there, that the repository is clean under it, and that a
planted `pickle.loads`/`eval`/`exec` *is* flagged, so the rule can fail. An AST scan adds what those rules
miss: importing a pickle-like module at all, `allow_pickle=True`, unsafe YAML loaders, pandas pickles."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).with_name("ruff")
RULES = ("S301", "S307", "S102")
SOURCES = ("policies", "service", "simulator", "bench", "tests")
PLANTED = """\
import pickle


def load(blob, text, code):
    obj = pickle.loads(blob)
    value = eval(text)
    exec(code)
    return obj, value
"""
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve", "marshal", "jsonpickle"}
UNSAFE_CALLS = {"eval", "exec", "compile", "__import__"}  # builtins, when called by bare name
UNSAFE_ATTRS = {"unsafe_load", "full_load", "read_pickle", "to_pickle", "load_pickle"}
UNSAFE_LOADERS = {"Loader", "UnsafeLoader", "FullLoader"}


def ruff(*args: str, cwd: Path = ROOT) -> tuple[int, list[dict[str, object]]]:
    done = subprocess.run(
        [str(RUFF), "check", "--no-cache", "--output-format", "json", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout or "[]")


def test_pyproject_selects_the_rules() -> None:
    lint = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert set(RULES) <= set(lint["select"])
    for ignored in lint.get("per-file-ignores", {}).values():
        assert not set(RULES) & set(ignored)
    assert not set(RULES) & set(lint.get("ignore", []))


def test_the_repository_is_clean_under_the_rules() -> None:
    code, findings = ruff("--select", ",".join(RULES), ".")
    assert code == 0, [f"{f['filename']}:{f['location']} {f['code']}" for f in findings]


@pytest.mark.parametrize("config", ["repository", "explicit"])
def test_a_planted_pickle_eval_exec_is_flagged(tmp_path: Path, config: str) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(PLANTED)
    args = (
        ["--config", str(ROOT / "pyproject.toml")]
        if config == "repository"
        else ["--isolated", "--select", ",".join(RULES)]
    )
    code, findings = ruff(*args, str(planted), cwd=tmp_path)
    assert code == 1
    assert {f["code"] for f in findings} >= set(RULES)


def unsafe_uses(source: str) -> list[str]:
    """What the AST scan forbids, as 'line N: what'."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [
                f"line {node.lineno}: import {a.name}"
                for a in node.names
                if a.name.split(".")[0] in PICKLE_MODULES
            ]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLE_MODULES:
            found.append(f"line {node.lineno}: from {node.module} import")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in UNSAFE_CALLS:
                found.append(f"line {node.lineno}: {func.id}()")
            if isinstance(func, ast.Attribute) and (
                func.attr in UNSAFE_ATTRS
                or (func.attr == "load" and isinstance(func.value, ast.Name) and func.value.id == "yaml")
            ):
                found.append(f"line {node.lineno}: {ast.unparse(func)}()")
            for kw in node.keywords:
                if kw.arg == "allow_pickle" and not (
                    isinstance(kw.value, ast.Constant) and kw.value.value is False
                ):
                    found.append(f"line {node.lineno}: allow_pickle={ast.unparse(kw.value)}")
                if kw.arg == "Loader" and ast.unparse(kw.value).split(".")[-1] in UNSAFE_LOADERS:
                    found.append(f"line {node.lineno}: Loader={ast.unparse(kw.value)}")
    return found


def python_files() -> list[Path]:
    return sorted(p for d in SOURCES for p in (ROOT / d).rglob("*.py") if ".venv" not in p.parts)


def test_no_unsafe_deserialization_or_dynamic_code_anywhere() -> None:
    files = python_files()
    assert len(files) > 50
    problems = {str(p.relative_to(ROOT)): unsafe_uses(p.read_text()) for p in files}
    assert {k: v for k, v in problems.items() if v} == {}


def test_the_ast_scan_can_fail() -> None:
    planted = PLANTED + (
        "import numpy as np\nimport yaml\nimport pandas as pd\n"
        "np.load('x.npy', allow_pickle=True)\nyaml.load(open('c.yaml'))\n"
        "yaml.load(open('c.yaml'), Loader=yaml.Loader)\npd.read_pickle('f')\nfrom dill import loads\n"
    )
    found = unsafe_uses(planted)
    expected = ["import pickle", "eval()", "exec()", "allow_pickle=True", "yaml.load()", "Loader=yaml.Loader"]
    expected += ["pd.read_pickle()", "from dill import"]
    for what in expected:
        assert any(what in f for f in found), (what, found)
