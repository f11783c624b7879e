"""``gradviz html``: several report folders on one self-contained page, layer by layer side by side."""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import replace
from pathlib import Path

from gradviz.cli import common
from gradviz.errors import GradvizError
from gradviz.io.outputs import atomic_file, check_out_file
from gradviz.report.page import read_report_view, reports_page_html

# The most reports one page puts side by side (beyond this the columns are too narrow to read).
MAX_REPORTS = 12


def register(subparsers, summary: str) -> None:
    p = subparsers.add_parser(
        "html",
        help=summary,
        description="Put several gradient-spectrum reports (folders written by `gradviz report`) on one page: "
        "each one's verdicts and headline figure, then the layers side by side (by name when the reports share "
        "their layers, else by cumulative stride). The page holds its figures and needs no network.",
    )
    p.add_argument("reports", nargs="+", metavar="REPORT_DIR", help=f"report folders (1 to {MAX_REPORTS})")
    p.add_argument("--out", required=True, help="the page (.html): a new file, or one gradviz wrote (replaced atomically)")
    p.add_argument("--title", default="Gradient-spectrum reports side by side", help="the page's title")
    common.add_quiet(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if len(args.reports) > MAX_REPORTS:
        raise GradvizError(f"{len(args.reports)} report folders; valid: 1 to {MAX_REPORTS} on one page")
    out = check_out_file(args.out, inputs=args.reports, suffixes=[".html"])
    for folder in args.reports:  # a file added to a report folder would make it a folder gradviz did not write
        if Path(folder).resolve() in out.resolve().parents:
            raise GradvizError(f"--out {args.out} is inside the report folder {folder}; valid: a path outside it")
    views = [read_report_view(folder) for folder in args.reports]
    counts = Counter(view.label for view in views)  # two reports of one model: name their folders too
    views = [view if counts[view.label] == 1 else replace(view, label=f"{view.label} ({folder})")
             for view, folder in zip(views, args.reports)]
    page = reports_page_html(views, title=args.title)
    with atomic_file(out, guard=True) as tmp:
        tmp.write_text(page, encoding="utf-8", errors="replace")  # a title or folder name may not be UTF-8
    if not args.quiet:
        print(f"wrote {out} ({len(views)} report{'s' * (len(views) != 1)}: {', '.join(view.label for view in views)})")
    return 0
