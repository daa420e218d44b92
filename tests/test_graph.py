"""Dependency graphs: cycles found once each, and a deterministic order, at any depth."""

from __future__ import annotations

import sys
import time

from mlform.graph import find_cycles, topological


def test_no_cycles() -> None:
    assert find_cycles({"a": ["b"], "b": ["c"], "c": []}) == []
    assert find_cycles({}) == []


def test_two_nodes_that_depend_on_each_other_are_one_cycle() -> None:
    assert find_cycles({"a": ["b"], "b": ["a"]}) == [["a", "b", "a"]]


def test_a_node_that_depends_on_itself() -> None:
    assert find_cycles({"a": ["a"]}) == [["a", "a"]]


def test_cycles_are_reported_from_where_they_close() -> None:
    edges = {"start": ["x"], "x": ["y"], "y": ["z"], "z": ["x"], "p": ["q"], "q": ["p"]}
    assert find_cycles(edges) == [["p", "q", "p"], ["x", "y", "z", "x"]]


def test_two_cycles_through_one_node() -> None:
    edges = {"a": ["b", "c"], "b": ["a"], "c": ["a"]}
    assert find_cycles(edges) == [["a", "b", "a"], ["a", "c", "a"]]


def test_edges_to_unknown_nodes_are_ignored() -> None:
    assert find_cycles({"a": ["elsewhere"], "b": ["a"]}) == []
    assert topological(["a", "b"], {"a": ["elsewhere"], "b": ["a"]}) == ["a", "b"]


def test_order_puts_dependencies_first_and_ties_in_name_order() -> None:
    edges = {"train": ["iris", "env"], "score": ["train"], "iris": ["store"], "env": []}
    nodes = ["score", "train", "iris", "env", "store", "alone"]
    assert topological(nodes, edges) == ["alone", "env", "store", "iris", "train", "score"]


def test_order_ignores_self_edges_and_edges_outside_the_nodes() -> None:
    assert topological(["b", "a"], {"a": ["a", "z"], "b": ["a"]}) == ["a", "b"]


def test_nodes_in_a_cycle_come_last_in_name_order() -> None:
    edges = {"b": ["a"], "a": ["b"], "c": []}
    assert topological(["a", "b", "c"], edges) == ["c", "a", "b"]


def test_a_long_chain_is_linear_and_needs_no_recursion() -> None:
    n = 10_000
    assert n > sys.getrecursionlimit()
    names = [f"n{i:05d}" for i in range(n)]
    chain = {names[i]: [names[i - 1]] if i else [] for i in range(n)}
    started = time.perf_counter()
    assert topological(reversed(names), chain) == names
    assert find_cycles(chain) == []
    # Closing the chain makes one cycle through all of it.
    chain[names[0]] = [names[-1]]
    cycles = find_cycles(chain)
    assert len(cycles) == 1
    assert len(cycles[0]) == n + 1
    # Linear: a quadratic walk of 10,000 nodes would take seconds, not milliseconds.
    assert time.perf_counter() - started < 1.0


def test_a_wide_graph_is_linear() -> None:
    leaves = [f"leaf{i:05d}" for i in range(10_000)]
    edges = {"hub": leaves, **{leaf: [] for leaf in leaves}}
    started = time.perf_counter()
    assert find_cycles(edges) == []
    order = topological(edges, edges)
    assert order[-1] == "hub"
    assert time.perf_counter() - started < 1.0
