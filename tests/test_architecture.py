"""The package's shape: no import cycles between its modules (function-level imports included), and the
command-line package importing no torch."""

import ast
from pathlib import Path

import sinfree

ROOT = Path(sinfree.__file__).parent


def module_imports() -> dict[str, set[str]]:
    """Module -> the sinfree modules it imports anywhere in its body (``from . import x`` counts as x)."""
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = ("sinfree", *path.relative_to(ROOT).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    edges = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)] if node.level else []
                target = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module or ""
                submodules = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in modules]
                found = submodules or ([target] if target in modules else [])
            elif isinstance(node, ast.Import):
                found = [alias.name for alias in node.names if alias.name in modules]
            else:
                continue
            edges[name].update(target for target in found if target != name)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    assert cycles(module_imports()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_cli_options_import_no_command_and_no_torch():
    edges = module_imports()
    assert not {name for name in edges["sinfree.cli.options"] if name.startswith("sinfree.cli.")}
    top_level = [
        node
        for node in ast.parse((ROOT / "cli" / "options.py").read_text()).body
        if isinstance(node, (ast.Import, ast.ImportFrom))
    ]
    assert not any("torch" in ast.unparse(node) for node in top_level)


def test_ruff_check_and_format_are_clean():
    """The linter (pyproject's [tool.ruff]) and the formatter find nothing in src, tests, benchmarks and scripts."""
    import shutil
    import subprocess

    ruff = shutil.which("ruff")
    assert ruff, "ruff is in the test extra: pip install -e '.[test]'"
    repository = ROOT.parents[1]
    folders = [str(repository / name) for name in ("src", "tests", "benchmarks", "scripts")]
    for command in ([ruff, "check", *folders], [ruff, "format", "--check", *folders]):
        result = subprocess.run(command, capture_output=True, text=True, cwd=repository, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
