"""The package's floors run one way, as README "Layout" draws them: a module imports (at the top
or inside a function) only from its own floor or the floors below, and the units of a floor do
not import each other in a circle. The floors are read from the README, so the two cannot drift."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "speech2face"


def readme_floors() -> dict[str, int]:
    """README's Layout block: ``floor N  name name …`` lines → {unit: N}; a unit is a top-level
    module or package (``audio``, ``models``), or one module of a package (``engines.sessions``)."""
    text = (ROOT / "README.md").read_text()
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    floors = {}
    for line in block.splitlines():
        m = re.match(r"floor (\d+)\s+(.*?)(?:\s{2,}|$)", line)
        if m:
            for name in m.group(2).split():
                floors[name.removesuffix("/").removesuffix(".py").replace("/", ".")] = int(m.group(1))
    return floors


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every speech2face module ``path`` imports, absolute names (relative imports resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                if node.module:
                    found.add(".".join(base + [node.module]))
                else:
                    found.update(".".join(base + [a.name]) for a in node.names)
            elif node.module and node.module.split(".")[0] == "speech2face":
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "speech2face")
    return found


def unit_of(module: str, floors: dict[str, int]) -> str:
    """The most specific README unit holding ``module`` ('speech2face.engines.sessions' →
    'engines.sessions' if listed, else 'engines'); the package itself is '__init__'."""
    parts = module.split(".")[1:]
    for k in range(len(parts), 0, -1):
        if ".".join(parts[:k]) in floors:
            return ".".join(parts[:k])
    return "__init__" if not parts else parts[0]


def test_every_module_has_a_floor_in_the_readme():
    floors = readme_floors()
    units = {unit_of(module_name(p), floors) for p in PACKAGE.rglob("*.py")}
    assert units - set(floors) == set(), "modules missing from README Layout"
    assert set(floors) - units == set(), "README Layout names modules that do not exist"


def test_no_module_imports_from_a_floor_above_it_and_no_floor_has_a_circle():
    floors = readme_floors()
    upward, edges = [], defaultdict(set)
    for path in sorted(PACKAGE.rglob("*.py")):
        here = unit_of(module_name(path), floors)
        for target in imports_of(path):
            there = unit_of(target, floors)
            if there == here:
                continue
            if floors[there] > floors[here]:
                upward.append(f"{module_name(path)} (floor {floors[here]}) imports {target} (floor {floors[there]})")
            edges[here].add(there)
    assert upward == []

    def circle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for nxt in edges[node]:
                if nxt == start:
                    return trail + [start]
                if nxt not in trail and floors[nxt] == floors[start]:
                    stack.append((nxt, trail + [nxt]))
        return None

    circles = [c for u in floors if (c := circle_from(u))]
    assert circles == []
