"""How a sweep picks its trials' parameters: Azure ML's sampling algorithms, which
`engine.sampler` makes Optuna's samplers.

    random              RandomSampler(seed)           every expression
    random, rule sobol  QMCSampler("sobol", seed)     every expression
    grid                GridSampler(every choice)     choice only
    bayesian            TPESampler(seed)              choice, uniform and quniform

Grid and Bayesian sampling take only the expressions Azure allows them. Azure's
Bayesian sampling is Bayesian optimisation over the trials so far; Optuna's
tree-structured Parzen estimator is that, and with `constant_liar` it does not propose
the same point to trials that run side by side. `sampling_algorithm` is written as the
name alone or as `{type: random, seed: 42, rule: sobol}`.

A sweep always samples from a seed: the one written, else one the sweep derives from its
own content, so that applying an unchanged sweep again proposes the same trials (and
finds them done).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlform.sweeps import Invalid
from mlform.sweeps.space import Parameter

ALGORITHMS = ("random", "grid", "bayesian")
_BAYESIAN = frozenset({"choice", "uniform", "quniform"})
_RULES = ("random", "sobol")


@dataclass(frozen=True, slots=True)
class Sampling:
    type: str  # random | grid | bayesian
    seed: int | None = None
    rule: str = "random"  # random sampling's: random | sobol

    def combinations(self, space: Sequence[Parameter]) -> int | None:
        """How many trials grid sampling has (every combination once); None otherwise."""
        if self.type != "grid":
            return None
        count = 1
        for parameter in space:
            count *= len(parameter.grid)
        return count


def parse(body: Any, space: Sequence[Parameter]) -> Sampling:
    """`sampling_algorithm` as written, checked against the search space."""
    where: list[str | int] = ["sampling_algorithm"]
    if isinstance(body, str):
        body = {"type": body}
    if not isinstance(body, Mapping) or "type" not in body:
        raise Invalid(where, f"sampling_algorithm is one of {', '.join(ALGORITHMS)}")
    kind = str(body["type"]).lower()
    if kind not in ALGORITHMS:
        raise Invalid(
            [*where, "type"], f"no sampling algorithm {kind!r}: one of {', '.join(ALGORITHMS)}"
        )
    allowed = {"type", "seed", "rule"} if kind == "random" else {"type"}
    for key in body:
        if key not in allowed:
            raise Invalid(
                [*where, str(key)],
                f"{kind} sampling takes no {key}"
                + ("; random sampling takes seed and rule" if key in ("seed", "rule") else ""),
            )
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise Invalid([*where, "seed"], f"seed is a whole number, not {seed!r}")
    rule = str(body.get("rule", "random")).lower()
    if rule not in _RULES:
        raise Invalid([*where, "rule"], f"rule is one of {', '.join(_RULES)}, not {rule!r}")
    for parameter in space:
        at = ["search_space", parameter.name, "type"]
        if kind == "grid" and parameter.type != "choice":
            raise Invalid(
                at,
                f"{parameter.name}: grid sampling takes choice parameters only (each value "
                f"once), not {parameter.type}; list its values, or sample at random",
            )
        if kind == "bayesian" and parameter.type not in _BAYESIAN:
            raise Invalid(
                at,
                f"{parameter.name}: Bayesian sampling takes choice, uniform and quniform "
                f"parameters, as Azure ML's does, not {parameter.type}",
            )
    return Sampling(kind, seed, rule)
