"""The HTML report's template engine: Jinja2 with autoescaping on for every template.

Templates live in `jobs/analytics/templates/` (shipped as package data). Every value a template
prints is escaped unless it is already `Markup` (a rendered chart), so data such as product names
or photo ids can never become markup.
"""

from __future__ import annotations

from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup


def _num(value: float) -> str:
    """A coordinate for SVG: at most two decimals, no trailing zeros (`12`, `12.5`, `12.25`)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


@cache
def environment() -> Environment:
    """The one Jinja2 environment (autoescape on, undefined names are errors)."""
    env = Environment(loader=PackageLoader("jobs.analytics", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters["num"] = _num
    env.filters["thousands"] = lambda value: f"{value:,}"
    return env


def render(template: str, **context: object) -> Markup:
    """`template` rendered with `context`, as markup safe to embed in another template."""
    return Markup(environment().get_template(template).render(**context))
