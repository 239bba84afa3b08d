#!/usr/bin/env python3
"""Checks the layering of herald's library: which top-level module of
`src/` imports which, as written in `crate::` paths.

Two rules, both from the map in `src/lib.rs`:
  1. no import cycle between top-level modules;
  2. each module imports only modules listed before it in LAYERS (the
     ground `base` imports nothing of herald's; `base::text` imports
     nothing at all, not even the rest of `base`).

Prints every offending import with file and line and exits 1, or prints
the module graph and exits 0. `.ci/run` runs it.
"""
import os
import re
import sys

# Lowest first. A module may import any module before it, never one after.
LAYERS = [
    "base",
    "config",
    "content",
    "feeds",
    "templates",
    "store",
    "mail",
    "subscribers",
    "digest",
    "http",
    "daemon",
    "cli",
]

PATH = re.compile(r"\bcrate::([a-z_]+)(?:::([a-z_]+))?")


def top_module(root, path):
    rel = os.path.relpath(path, root)
    head = rel.split(os.sep)[0]
    return head[:-3] if head.endswith(".rs") else head


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    root = os.path.normpath(root)
    edges = {}
    problems = []
    for dirpath, _, files in os.walk(root):
        for name in sorted(files):
            if not name.endswith(".rs"):
                continue
            path = os.path.join(dirpath, name)
            module = top_module(root, path)
            if module in ("lib", "main"):
                continue
            text_only = os.path.relpath(path, root) == os.path.join("base", "text.rs")
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    if line.lstrip().startswith("//"):
                        continue
                    for m in PATH.finditer(line):
                        target = m.group(1)
                        where = f"src/{os.path.relpath(path, root)}:{lineno}"
                        if text_only:
                            problems.append(f"{where}: base::text must import nothing of herald's, imports crate::{target}")
                            continue
                        if target == module:
                            continue
                        if target not in LAYERS:
                            problems.append(f"{where}: crate::{target} is not in the layer list")
                            continue
                        edges.setdefault(module, set()).add(target)
                        if module in LAYERS and LAYERS.index(target) > LAYERS.index(module):
                            problems.append(f"{where}: {module} imports crate::{target}, a group above it")
    # Cycles (rule 1), reported even when rule 2 already caught the edge.
    state = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                problems.append("import cycle: " + " -> ".join(cycle))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    if problems:
        print("\n".join(problems))
        return 1
    for module in LAYERS:
        print(f"{module:12} -> {', '.join(sorted(edges.get(module, ()))) or '(nothing)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
