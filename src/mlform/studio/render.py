"""Pages from the studio's templates (jinja2, every value escaped)."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

import mlform


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mlform.studio", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["version"] = mlform.__version__
    return env


def page(request: Request, template: str, *, status: int = 200, **values: Any) -> HTMLResponse:
    body = environment().get_template(template).render(request=request, **values)
    return HTMLResponse(body, status_code=status)
