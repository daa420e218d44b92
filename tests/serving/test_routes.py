"""The routes table: parsing, smooth weighted round-robin, reloading from its file."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from mlform.serving.routes import (
    Auth,
    Balancer,
    Deployment,
    Routes,
    RoutesFile,
    RoutesInvalid,
)
from mlform.serving.routes import parse_routes as parse


def deployment(name: str, weight: int, port: int = 5101) -> Deployment:
    return Deployment(name, f"http://127.0.0.1:{port}", "127.0.0.1", port, weight)


def test_a_routes_file_parses_in_declared_order() -> None:
    text = json.dumps(
        {
            "endpoint": "iris",
            "deployments": {
                "green": {"url": "http://127.0.0.1:5102/", "weight": 20},
                "blue": {"url": "http://localhost:5101", "weight": 80},
            },
        }
    )

    assert parse(text) == Routes(
        "iris",
        (
            Deployment("green", "http://127.0.0.1:5102", "127.0.0.1", 5102, 20),
            Deployment("blue", "http://localhost:5101", "localhost", 5101, 80),
        ),
    )


def test_every_problem_is_reported_at_once() -> None:
    text = json.dumps(
        {
            "endpoint": 3,
            "extra": 1,
            "deployments": {
                "a": {"url": "https://h:1", "weight": 1},
                "b": {"url": "http://h", "weight": True},
                "c": {"url": "http://h:1/score", "weight": 1, "slot": "x"},
                "d": [],
            },
        }
    )

    with pytest.raises(RoutesInvalid) as caught:
        parse(text, "routes.json")

    url = "must look like http://127.0.0.1:5101 (http, host and port, no path), got"
    assert str(caught.value).splitlines() == [
        "routes.json: endpoint: must be the endpoint's name, a non-empty string",
        "routes.json: unknown keys extra; expected endpoint, deployments and auth",
        f"routes.json: deployments.a.url: {url} 'https://h:1'",
        "routes.json: deployments.b.weight: must be a non-negative integer, got True",
        f"routes.json: deployments.b.url: {url} 'http://h'",
        "routes.json: deployments.c: unknown keys slot; expected url and weight",
        f"routes.json: deployments.c.url: {url} 'http://h:1/score'",
        "routes.json: deployments.d: must be an object with url and weight",
    ]


def test_auth_gives_the_mode_and_the_key_digests() -> None:
    digest = "AB" * 32
    text = json.dumps(
        {
            "endpoint": "iris",
            "deployments": {},
            "auth": {"mode": "token", "key_hashes": [digest], "token_key_file": "/k/iris.key"},
        }
    )

    assert parse(text) == Routes("iris", (), Auth("token", ("ab" * 32,), "/k/iris.key"))


@pytest.mark.parametrize(
    ("auth", "problems"),
    [
        ([], ['auth: must be an object with "mode" and "key_hashes"']),
        (
            {"mode": "basic", "key_hashes": ["0" * 64], "keys": []},
            [
                "auth: unknown keys keys; expected mode, key_hashes and token_key_file",
                "auth.mode: must be one of key, token, aml_token, got 'basic'",
            ],
        ),
        (
            {"mode": "key", "key_hashes": ["s3cret"]},
            ["auth.key_hashes: must be a non-empty array of sha256 hex digests"],
        ),
        (
            {"mode": "key", "key_hashes": []},
            ["auth.key_hashes: must be a non-empty array of sha256 hex digests"],
        ),
        (
            {"mode": "aml_token", "key_hashes": ["0" * 64]},
            ["auth.token_key_file: a token endpoint needs the path of its token key"],
        ),
    ],
)
def test_a_bad_auth_is_reported(auth: object, problems: list[str]) -> None:
    text = json.dumps({"endpoint": "iris", "deployments": {}, "auth": auth})

    with pytest.raises(RoutesInvalid) as caught:
        parse(text, "routes.json")

    assert str(caught.value).splitlines() == [f"routes.json: {p}" for p in problems]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "not valid JSON: Expecting property name enclosed in double quotes"),
        ("[]", "must be a JSON object with endpoint and deployments"),
        ('{"endpoint": "iris"}', "deployments: must be an object mapping names to {url, weight}"),
    ],
)
def test_a_file_that_is_not_a_table(text: str, problem: str) -> None:
    with pytest.raises(RoutesInvalid, match="^r: " + problem.replace("{", r"\{")):
        parse(text, "r")


def test_smooth_weighted_round_robin_interleaves_like_nginx() -> None:
    a, b, c = deployment("a", 5), deployment("b", 1), deployment("c", 1)
    balancer = Balancer([a, b, c])

    picks = [balancer.pick() for _ in range(14)]

    assert [p.name for p in picks if p] == list("aabacaa" * 2)


def test_weights_hold_exactly_over_every_full_cycle() -> None:
    balancer = Balancer([deployment("blue", 80), deployment("green", 20), deployment("x", 0)])

    picks = [p.name for p in (balancer.pick() for _ in range(1000)) if p]

    assert Counter(picks) == {"blue": 800, "green": 200}
    assert max(len(run) for run in "".join(p[0] for p in picks).split("g")) <= 4


def test_no_weight_no_pick() -> None:
    assert Balancer([deployment("blue", 0)]).pick() is None
    assert Balancer([]).pick() is None


def test_the_file_is_reread_when_it_changes_and_kept_when_broken(tmp_path: Path) -> None:
    path = tmp_path / "routes.json"

    def write(text: str) -> None:
        (tmp_path / "new").write_text(text)
        os.replace(tmp_path / "new", path)

    table = {"endpoint": "iris", "deployments": {"blue": {"url": "http://h:1", "weight": 1}}}
    write(json.dumps(table))
    routes = RoutesFile(path, interval=3600)
    assert routes.reload() is False  # unchanged

    table["deployments"]["blue"]["weight"] = 2  # type: ignore[index]
    write(json.dumps(table))
    routes.refresh()  # within the interval: not looked at
    assert routes.routes.deployments[0].weight == 1
    assert routes.reload() is True
    assert routes.routes.deployments[0].weight == 2

    write("{broken")
    assert routes.reload() is False
    path.unlink()
    assert routes.reload() is False
    assert routes.routes.deployments[0].weight == 2
