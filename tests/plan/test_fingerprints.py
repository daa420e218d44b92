"""The planner compares secret fingerprints only under the key they were made with."""

from __future__ import annotations

from mlform.plan import fingerprints


def test_only_fingerprints_under_the_same_key_are_compared() -> None:
    old = {"secret:A": "1", "secret:B": "2", "fingerprint-key": "k1", "spec": "s"}
    assert fingerprints.compare(old, {**old, "secret:A": "9"}).reasons() == ["secret A changed"]
    assert fingerprints.compare(old, old).reasons() == []
    moved = {"secret:A": "7", "secret:B": "8", "fingerprint-key": "k2"}
    assert fingerprints.compare(old, moved) == fingerprints.Comparison(other_key="k1")
    assert fingerprints.compare({}, moved) == fingerprints.Comparison()  # newly referenced
