"""Structure figures of the library: import cycles (imports inside functions included),
the longest functions and those with the most parameters, and private names imported
across modules.

    python bench/measure_structure.py [embedlab]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def modules(package: str) -> dict[str, Path]:
    base = ROOT / package
    out = {}
    for path in sorted(base.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def resolve(name: str, known: dict[str, Path]) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(mod: str, path: Path, known: dict[str, Path]):
    """(target module, imported names, inside a function?) for every import of the package."""
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    found = []

    def visit(node, in_func):
        for child in ast.iter_child_nodes(node):
            f = in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for a in child.names:
                    t = resolve(a.name, known)
                    if t:
                        found.append((t, [], in_func))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    pkg = pkg[: len(pkg) - (child.level - 1)]
                    base = ".".join(pkg + ([base] if base else []))
                for a in child.names:
                    sub = f"{base}.{a.name}"
                    t = resolve(sub, known) if sub in known else resolve(base, known)
                    if t:
                        found.append((t, [a.name] if sub not in known else [], in_func))
            visit(child, f)

    visit(tree, False)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            strong(v)
    return out


def functions(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            n_params = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) + bool(a.vararg) + bool(a.kwarg)
            if a.args and a.args[0].arg in ("self", "cls"):
                n_params -= 1
            yield node.name, node.end_lineno - node.lineno + 1, n_params, node.lineno


def explained(path: Path, line: int) -> bool:
    """Whether a comment sits right above the function (above its decorators)."""
    lines = path.read_text().splitlines()
    i = line - 2
    while i >= 0 and (lines[i].strip().startswith("@") or lines[i].startswith((" ", "\t")) and
                      not lines[i].strip().startswith("#") and lines[i - 1].strip().startswith("@")):
        i -= 1
    return i >= 0 and lines[i].strip().startswith("#")


def main(package: str = "embedlab") -> None:
    known = modules(package)
    graph: dict[str, set[str]] = {m: set() for m in known}
    in_function = 0
    private = []
    for mod, path in known.items():
        for target, names, in_func in imports(mod, path, known):
            if target == mod:
                continue
            # a package importing its own submodules is how packages register/re-export
            graph[mod].add(target)
            in_function += in_func
            private += [f"{mod} <- {target}.{n}" for n in names if n.startswith("_") and not n.startswith("__")]
        text = path.read_text()
        if "._read_parts" in text and mod != f"{package}.compute.cache" and not mod.endswith(".cache"):
            private.append(f"{mod} -> cache._read_parts")
    cyc = cycles(graph)
    print(f"modules: {len(known)}")
    print(f"imports of {package} inside functions: {in_function}")
    print(f"import cycles: {len(cyc)}; sizes {[len(c) for c in cyc]}")
    for c in cyc:
        print("  cycle:", ", ".join(c))
    rows = [(n, ln, p, f"{path.relative_to(ROOT)}:{line}") for mod, path in known.items()
            for n, ln, p, line in functions(path)]
    print("longest functions (lines):")
    for n, ln, p, where in sorted(rows, key=lambda r: -r[1])[:8]:
        print(f"  {ln:4d} lines {p:3d} params  {n}  {where}")
    print("most parameters:")
    for n, ln, p, where in sorted(rows, key=lambda r: -r[2])[:6]:
        print(f"  {p:4d} params {ln:3d} lines  {n}  {where}")
    print(f"functions over 80 lines: {sum(r[1] > 80 for r in rows)}; over 8 params: {sum(r[2] > 8 for r in rows)}")
    unexplained = [r for r in rows if (r[1] > 80 or r[2] > 8)
                   and not explained(ROOT / r[3].split(":")[0], int(r[3].split(":")[1]))]
    print(f"  of which without a comment saying why: {len(unexplained)}")
    for n, ln, p, where in unexplained:
        print(f"    {ln:4d} lines {p:3d} params  {n}  {where}")
    print(f"private names imported across modules: {len(private)}")
    for p in private:
        print("  ", p)


if __name__ == "__main__":
    main(*sys.argv[1:])
