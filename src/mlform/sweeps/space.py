"""A sweep's search space, with Azure ML's parameter expressions, as Optuna samples it.

Each parameter is sampled as a bounded distribution Optuna knows (its *latent* value)
and turned into the value Azure would give the trial:

    choice       {values: [...]}              one of the values
    randint      {upper}                      an integer in [0, upper)
    uniform      {min_value, max_value}       uniform in [min_value, max_value]
    quniform     {min_value, max_value, q}    round(uniform(min_value, max_value) / q) * q
    loguniform   {min_value, max_value}       exp(uniform(min_value, max_value))
    qloguniform  {min_value, max_value, q}    round(exp(uniform(…)) / q) * q
    normal       {mu, sigma}                  normal(mu, sigma)
    qnormal      {mu, sigma, q}               round(normal(mu, sigma) / q) * q
    lognormal    {mu, sigma}                  exp(normal(mu, sigma))
    qlognormal   {mu, sigma, q}               round(exp(normal(mu, sigma)) / q) * q

(Azure's definitions: `azure.ai.ml.sweep` and the hyperdrive `parameter_expressions`;
log-uniform bounds are exponents.) Optuna has no unbounded distribution, so a normal
is sampled as its quantile: a uniform latent u in (0, 1), mapped by the inverse of the
normal's distribution function, which gives the same distribution. A quantized value
whose q and bounds are whole numbers is an integer, so a script's `--trees 50` reads
as it would have been written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from mlform.sweeps import Invalid

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.trial import BaseTrial

# each expression's keys, as Azure's YAML writes them
KEYS: dict[str, tuple[str, ...]] = {
    "choice": ("values",),
    "randint": ("upper",),
    "uniform": ("min_value", "max_value"),
    "quniform": ("min_value", "max_value", "q"),
    "loguniform": ("min_value", "max_value"),
    "qloguniform": ("min_value", "max_value", "q"),
    "normal": ("mu", "sigma"),
    "qnormal": ("mu", "sigma", "q"),
    "lognormal": ("mu", "sigma"),
    "qlognormal": ("mu", "sigma", "q"),
}
_EDGE = 1e-9  # how near 0 and 1 a normal's quantile may come (its value stays finite)
Value = bool | int | float | str | None


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    type: str
    args: Mapping[str, Any]

    def distribution(self) -> BaseDistribution:
        """What Optuna samples for it (the latent value)."""
        # start-up: Optuna only when a sweep runs
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        a = self.args
        if self.type == "choice":
            return CategoricalDistribution(list(a["values"]))
        if self.type == "randint":
            return IntDistribution(0, int(a["upper"]) - 1)
        if self.type in ("normal", "qnormal", "lognormal", "qlognormal"):
            return FloatDistribution(_EDGE, 1 - _EDGE)
        return FloatDistribution(float(a["min_value"]), float(a["max_value"]))

    def suggest(self, trial: BaseTrial) -> Value:
        """This parameter's value for `trial`, sampled by its study's sampler (which keeps
        the latent value: what a resumed study is told again)."""
        a, name = self.args, self.name
        latent: Any
        if self.type == "choice":
            latent = trial.suggest_categorical(name, list(a["values"]))
        elif self.type == "randint":
            latent = trial.suggest_int(name, 0, int(a["upper"]) - 1)
        elif self.type in ("normal", "qnormal", "lognormal", "qlognormal"):
            latent = trial.suggest_float(name, _EDGE, 1 - _EDGE)
        else:
            latent = trial.suggest_float(name, float(a["min_value"]), float(a["max_value"]))
        return self.value(latent)

    def value(self, latent: Any) -> Value:
        """Azure's value for a latent one."""
        a, kind = self.args, self.type
        if kind in ("choice", "randint"):
            return latent  # type: ignore[no-any-return]
        x = float(latent)
        if kind in ("normal", "qnormal", "lognormal", "qlognormal"):
            x = NormalDist(float(a["mu"]), float(a["sigma"])).inv_cdf(x)
        if kind in ("loguniform", "qloguniform", "lognormal", "qlognormal"):
            x = math.exp(x)
        if kind.startswith("q"):
            return self._quantized(x)
        return x

    def _quantized(self, x: float) -> float | int:
        q = float(self.args["q"])
        rounded = round(x / q) * q
        whole = [self.args.get(k, 0) for k in ("q", "min_value", "max_value", "mu")]
        if all(float(v).is_integer() for v in whole):
            return int(rounded)
        return round(rounded, 12)  # not 0.30000000000000004 for 3 × 0.1

    @property
    def grid(self) -> list[Value]:
        """Every value, for grid sampling (a choice only)."""
        return list(self.args["values"])


def parse(body: Any) -> tuple[Parameter, ...]:
    """The search space as written under `search_space:`; `Invalid` says what is wrong."""
    if not isinstance(body, Mapping) or not body:
        raise Invalid(
            ["search_space"],
            "a sweep needs a search space: `search_space: {C: {type: uniform, min_value: "
            "0.01, max_value: 10}}`",
        )
    return tuple(_parameter(str(name), expression) for name, expression in body.items())


def _parameter(name: str, expression: Any) -> Parameter:
    where: list[str | int] = ["search_space", name]
    if not isinstance(expression, Mapping) or "type" not in expression:
        raise Invalid(where, f"{name}: a parameter expression needs a type: one of {_TYPES}")
    kind = str(expression["type"]).lower()
    if kind not in KEYS:
        raise Invalid([*where, "type"], f"{name}: no parameter expression {kind!r}: {_TYPES}")
    args = {k: v for k, v in expression.items() if k != "type"}
    wanted = KEYS[kind]
    for key in wanted:
        if key not in args:
            raise Invalid(where, f"{name}: {kind} needs {', '.join(wanted)}; {key} is missing")
    for key in args:
        if key not in wanted:
            raise Invalid([*where, key], f"{name}: {kind} takes {', '.join(wanted)}, not {key}")
    if kind == "choice":
        _check_choice(where, name, args["values"])
        return Parameter(name, kind, args)
    for key in wanted:
        if isinstance(args[key], bool) or not isinstance(args[key], int | float):
            raise Invalid([*where, key], f"{name}: {key} is a number, not {args[key]!r}")
    if kind == "randint" and (not float(args["upper"]).is_integer() or args["upper"] < 1):
        raise Invalid([*where, "upper"], f"{name}: upper is a whole number of 1 or more")
    if "min_value" in args and not args["min_value"] < args["max_value"]:
        raise Invalid([*where, "max_value"], f"{name}: max_value must be greater than min_value")
    if "sigma" in args and not args["sigma"] > 0:
        raise Invalid([*where, "sigma"], f"{name}: sigma must be greater than 0")
    if "q" in args and not args["q"] > 0:
        raise Invalid([*where, "q"], f"{name}: q must be greater than 0")
    return Parameter(name, kind, args)


def _check_choice(where: Sequence[str | int], name: str, values: Any) -> None:
    if not isinstance(values, list) or not values:
        raise Invalid([*where, "values"], f"{name}: choice needs a list of values")
    for index, value in enumerate(values):
        if not (value is None or isinstance(value, bool | int | float | str)):
            raise Invalid(
                [*where, "values", index],
                f"{name}: a choice's values are numbers, strings, true/false or null",
            )
    if len({repr(v) for v in values}) != len(values):
        raise Invalid([*where, "values"], f"{name}: a choice lists each value once")


_TYPES = ", ".join(KEYS)
