"""Self-contained HTML pages: gradviz's jinja2 templates, and figures linked beside a page or embedded in it.

Every page extends ``templates/base.html.j2``: its style and its table-sorting script are inline, so a
page needs no network and no build step. A page carries ``<meta name="generator" content="gradviz X">``
(:func:`gradviz.io.manifest.software_mark`), which is how gradviz recognises a page it wrote
(:func:`gradviz.io.outputs.is_gradviz_file`).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import jinja2

from gradviz.io.manifest import GENERATOR_META, software_mark

__all__ = ["GENERATOR_META", "TEMPLATES", "embed_png", "render_page"]

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
        >>> page = render_page("base.html.j2", title="<a & b>")
        >>> "<title>&lt;a &amp; b&gt;</title>" in page, GENERATOR_META in page
        (True, True)
    """
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return env.get_template(template).render(generator=software_mark(), **context)


def embed_png(path: str | os.PathLike) -> str:
    """A PNG file as a ``data:`` URI, for a page that must hold its figures.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     png = Path(folder) / "x.png"
        ...     _ = png.write_bytes(b"\\x89PNG")
        ...     embed_png(png)
        'data:image/png;base64,iVBORw=='
    """
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")
