"""Self-contained HTML pages: gradviz's jinja2 templates, and figures linked beside a page or embedded in it.

Every page extends ``templates/base.html.j2``: its style and its table-sorting script are inline, so a
page needs no network and no build step. A page begins with :data:`gradviz.io.manifest.PAGE_HEAD` (ending in
``<meta name="generator" content="gradviz X">``), which is how gradviz recognises a page it wrote
(:func:`gradviz.io.outputs.is_gradviz_file`).
"""

from __future__ import annotations

import base64
from pathlib import Path

import jinja2

from gradviz.io.manifest import software_mark

__all__ = ["TEMPLATES", "png_data_uri", "render_page"]

# Where the page templates live (package data).
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def render_page(template: str, **context) -> str:
    """Render one of gradviz's page templates, with every value HTML-escaped unless marked safe.

    Args:
        template: a file name under :data:`TEMPLATES` (``"report.html.j2"``, ...).
        **context: the template's variables; ``generator`` (the software mark) is added.

    Returns:
        The page as text.

    Example:
        >>> from gradviz.io.manifest import PAGE_HEAD
        >>> page = render_page("base.html.j2", title="<a & b>")
        >>> "<title>&lt;a &amp; b&gt;</title>" in page, page.startswith(PAGE_HEAD)
        (True, True)
    """
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return env.get_template(template).render(generator=software_mark(), **context)


def png_data_uri(png: bytes) -> str:
    """A PNG file's bytes as a ``data:`` URI, for a page that must hold its figures.

    Example:
        >>> png_data_uri(b"\\x89PNG")
        'data:image/png;base64,iVBORw=='
    """
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
