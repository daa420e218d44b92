"""Component keys: typed in the planner, stored as the same strings as ever."""

from __future__ import annotations

from mlform.kinds.base import digest_of
from mlform.plan import keys

STORED = {
    "spec": keys.Spec(),
    "code": keys.Code(),
    "code:src/train.py": keys.CodeFile("src/train.py"),
    "file:data/a.csv": keys.File("data/a.csv"),
    "content": keys.Content(),
    "dep:data/iris": keys.Dep("data/iris"),
    "part:deployment blue model": keys.Part("deployment blue model"),
    "input:train": keys.Input("train"),
    "environment": keys.Environment(),
    "secret:API_TOKEN": keys.Secret("API_TOKEN"),
    "fingerprint-key": keys.FingerprintKey(),
    "step:prep": keys.Step("prep"),
    "base": keys.Setting("base"),
    "model": keys.Setting("model"),
    "runtime": keys.Setting("runtime"),
    "build": keys.Setting("build"),
    "traffic": keys.Setting("traffic"),
    "run": keys.Setting("run"),
    "command": keys.Setting("command"),
}


def test_every_stored_key_parses_to_its_type_and_back() -> None:
    assert {text: keys.parse(text) for text in STORED} == STORED
    assert [str(key) for key in STORED.values()] == list(STORED)


def test_a_colon_in_a_name_stays_in_the_name() -> None:
    assert keys.parse("file:a:b.csv") == keys.File("a:b.csv")
    assert keys.parse("dep:data/x") != keys.parse("dep:data/y")
    assert keys.parse("unknown:thing") == keys.Setting("unknown:thing")


def test_typed_components_keep_their_values() -> None:
    stored = {"spec": "s", "file:a.csv": "1", "secret:T": "f"}
    assert keys.typed(stored) == {keys.Spec(): "s", keys.File("a.csv"): "1", keys.Secret("T"): "f"}


def test_digests_are_made_of_the_stored_strings_as_before() -> None:
    """A state applied by an earlier mlform plans nothing: the same keys, the same digest
    (secret fingerprints and their key left out)."""
    components = {str(keys.Spec()): "s", str(keys.File("a.csv")): "1"}
    components[str(keys.Dep("data/x"))] = "d"
    components[str(keys.Secret("T"))] = "x"
    components[str(keys.FingerprintKey())] = "k"
    assert digest_of(components) == (
        "0e7a8793b941c48c22d098bf3532276991f57fb01f08c9ca88afca1643b2ede9"
    )
