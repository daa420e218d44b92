"""Dependency graphs: ordering and cycles, used by validation and by the planner."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping


def find_cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Each cycle once, as the nodes along it with the first repeated at the end."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done
    for start in sorted(edges):
        if state.get(start):
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(edges.get(start, ())))]
        path = [start]
        state[start] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            nxt = todo.pop(0)
            if nxt not in edges:
                continue
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(edges.get(nxt, ()))))
    return cycles


def topological(nodes: Iterable[str], edges: Mapping[str, Iterable[str]]) -> list[str]:
    """`nodes` with every node after the nodes it depends on; ties in name order.

    Kahn's algorithm over a heap: linear in the graph, deterministic in its output.
    Nodes caught in a cycle (validation refuses those) come last, in name order.
    """
    wanted = set(nodes)
    waiting = dict.fromkeys(wanted, 0)
    users: dict[str, list[str]] = {}
    for node in wanted:
        for dep in set(edges.get(node, ())):
            if dep in wanted and dep != node:
                waiting[node] += 1
                users.setdefault(dep, []).append(node)
    ready = [node for node, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for user in users.get(node, ()):
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, user)
    if len(order) < len(wanted):
        order.extend(sorted(wanted - set(order)))
    return order
