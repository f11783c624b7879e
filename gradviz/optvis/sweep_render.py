"""Channel sweeps, drawing half: the folder a sweep writes (Pillow and a jinja2 page, no matplotlib).

:func:`write_sweep` fills a folder (the temporary one :func:`gradviz.io.outputs.atomic_dir` gives) with

- ``channel-NNNN.png``: each channel's image, full size (:func:`gradviz.optvis.render.write_image`);
- ``contact.png``: every channel in a grid, each tile labelled with its channel (:func:`contact_sheet`);
- ``index.html``: a page listing the channels with their images, objective and grid numbers;
- ``sweep.json``: the settings, and per channel its seed, objective and the checkerboard metrics of its update.

Nothing here computes a statistic: the numbers come from :mod:`gradviz.optvis.sweep`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from gradviz.io.html import render_page
from gradviz.io.manifest import software_mark
from gradviz.io.outputs import json_ready
from gradviz.io.text import fmt
from gradviz.optvis.render import to_uint8, write_image
from gradviz.optvis.sweep import ChannelDream

__all__ = ["CONTACT_MAX_COLUMNS", "channel_file", "contact_sheet", "sweep_summary", "write_sweep"]

# Contact sheet layout: at most 16 tiles a row (64 channels make 8 x 8, 256 make 16 x 16); a tile is the
# image enlarged pixel for pixel to at least 64 px (a 32 px dream stays legible and a period-2 grid stays
# visible) and shrunk to at most 256 px (a 16-column sheet of 256 px tiles is 4096 px wide).
CONTACT_MAX_COLUMNS, TILE_MIN, TILE_MAX = 16, 64, 256
# Label strip above each tile (px, room for the default font's 11 px text), and the gap between tiles.
LABEL_HEIGHT, GAP = 14, 2
# Thumbnails on the index page (CSS px).
THUMB = 96


def channel_file(channel: int) -> str:
    """The file name of one channel's image.

    Example:
        >>> channel_file(7), channel_file(12345)
        ('channel-0007.png', 'channel-12345.png')
    """
    return f"channel-{channel:04d}.png"


def _tile(image: torch.Tensor) -> Image.Image:
    tile = Image.fromarray(to_uint8(image[None]))
    side = tile.width
    if side < TILE_MIN:
        k = math.ceil(TILE_MIN / side)
        return tile.resize((side * k, side * k), Image.Resampling.NEAREST)
    if side > TILE_MAX:
        return tile.resize((TILE_MAX, TILE_MAX), Image.Resampling.BOX)
    return tile


def contact_sheet(images: list[torch.Tensor], labels: list[str]) -> Image.Image:
    """Every image in a grid, row by row, each under its label.

    Args:
        images: (3, S, S) tensors in [0, 1], all the same size.
        labels: one per image.

    Returns:
        An RGB image: ``min(16, ceil(sqrt(n)))`` columns.

    Example:
        >>> sheet = contact_sheet([torch.zeros(3, 32, 32)] * 5, [f"ch {i}" for i in range(5)])
        >>> sheet.size  # 3 columns, 2 rows of 64 px tiles (32 px doubled) under 14 px labels, 2 px gaps
        (200, 162)
    """
    tiles = [_tile(x) for x in images]
    columns = min(CONTACT_MAX_COLUMNS, math.ceil(math.sqrt(len(tiles))))
    rows = math.ceil(len(tiles) / columns)
    side = tiles[0].width
    cell_w, cell_h = side + GAP, side + LABEL_HEIGHT + GAP
    sheet = Image.new("RGB", (columns * cell_w + GAP, rows * cell_h + GAP), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for i, (tile, label) in enumerate(zip(tiles, labels)):
        x, y = GAP + (i % columns) * cell_w, GAP + (i // columns) * cell_h
        draw.text((x + 1, y), label, fill="black", font=font)
        sheet.paste(tile, (x, y + LABEL_HEIGHT))
    return sheet


def sweep_summary(dreams: list[ChannelDream], settings: dict) -> dict:
    """``sweep.json``: ``settings`` (what the caller records: model, layer, ...) and one entry per channel.

    Example:
        >>> from gradviz.spectrum import checkerboard_metrics
        >>> d = ChannelDream(3, 11, torch.zeros(3, 8, 8), 0.5, 1.5, False, checkerboard_metrics(torch.ones(1, 3, 8, 8), 2))
        >>> entry = sweep_summary([d], {"layer": "x"})["channels"][0]
        >>> entry["channel"], entry["file"], entry["seed"], entry["objective_end"]
        (3, 'channel-0003.png', 11, 1.5)
    """
    return json_ready({**settings, "channels": [
        {"channel": d.channel, "file": channel_file(d.channel), "seed": d.seed, "objective_start": d.objective_start,
         "objective_end": d.objective_end, "stalled": d.stalled, "update_metrics": d.update_metrics.to_dict()}
        for d in dreams]})


def _page(summary: dict) -> str:
    s = summary
    entries = s["channels"]
    rows = [{"channel": e["channel"], "file": e["file"], "seed": e["seed"], "start": fmt(e["objective_start"]),
             "end": fmt(e["objective_end"]), "lattice": fmt(e["update_metrics"]["lattice_fraction"]),
             "verdict": "stalled: zero gradient" if e["stalled"] else e["update_metrics"]["verdict"]} for e in entries]
    st = s["settings"]
    text = (f"{len(entries)} channels of {s['layer']} in {s['model']} ({s['weights']}), {s['size']} px, "
            f"{st['steps']} steps x {st['octaves']} octave(s), {st['optimizer']} on {st['parameterization']}, "
            f"seed {st['seed']}.")
    provenance = [("software", s["software"]), ("model", f"{s['model']} ({s['weights']})"), ("layer", s["layer"]),
                  ("objective", s["objective"]), ("start", s["start"]), ("batch size", s["batch_size"]),
                  ("settings", json.dumps(st)), ("seeds", s["seed_rule"])]
    if "distributed" in s:
        provenance.append(("distributed", json.dumps(s["distributed"])))
    return render_page("sweep.html.j2", title=f"Channel sweep: {s['model']} {s['layer']}", summary=text,
                       objective=s["objective"], stride=entries[0]["update_metrics"]["stride"], rows=rows, thumb=THUMB,
                       columns=["channel", "image", "objective at start", "objective at end", "lattice share",
                                "grid verdict of the update", "seed"], provenance=provenance)


def write_sweep(folder: str | Path, dreams: list[ChannelDream], summary: dict) -> None:
    """Write a sweep's files into ``folder`` (see the module docstring).

    Args:
        folder: an existing folder (the temporary one of :func:`gradviz.io.outputs.atomic_dir`).
        dreams: the channels, in the order swept.
        summary: from :func:`sweep_summary`.
    """
    folder = Path(folder)
    for d in dreams:
        write_image(d.image[None], folder / channel_file(d.channel))
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", software_mark())
    contact_sheet([d.image for d in dreams], [f"ch {d.channel}" for d in dreams]).save(
        folder / "contact.png", format="PNG", pnginfo=info)
    (folder / "index.html").write_text(_page(summary), encoding="utf-8")
    (folder / "sweep.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
