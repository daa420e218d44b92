"""Dependency graphs: ordering and cycles, used by validation and by the planner.

Both walks are iterative: a chain of thousands of resources must not hit Python's
recursion limit, and both are linear in nodes plus edges.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping


def find_cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The cycles in `edges`, each as the nodes along it with the first repeated at the end.

    A depth-first walk in name order reports one cycle for each edge that closes one, so
    two nodes that depend on each other give one cycle, not two. Edges to nodes that are
    not keys of `edges` are ignored.
    """
    cycles: list[list[str]] = []
    visiting, done = 1, 2
    state: dict[str, int] = {}
    for start in sorted(edges):
        if state.get(start):
            continue
        path = [start]
        where = {start: 0}  # position of each node on `path`, to cut a cycle out of it
        stack: list[Iterator[str]] = [iter(sorted(edges[start]))]
        state[start] = visiting
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                node = path.pop()
                del where[node]
                state[node] = done
            elif nxt not in edges:
                continue
            elif state.get(nxt) == visiting:
                cycles.append([*path[where[nxt] :], nxt])
            elif not state.get(nxt):
                state[nxt] = visiting
                where[nxt] = len(path)
                path.append(nxt)
                stack.append(iter(sorted(edges[nxt])))
    return cycles


def topological(nodes: Iterable[str], edges: Mapping[str, Iterable[str]]) -> list[str]:
    """`nodes` with every node after the nodes it depends on; ties in name order.

    Kahn's algorithm over a heap: linear in the graph (plus a log for the heap),
    deterministic in its output. Nodes caught in a cycle (validation refuses those) come
    last, in name order.
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
