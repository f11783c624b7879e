"""The report's figures say what the numbers say: the headline draws the report's excess values, null bands,
thresholds and detections; spectra and tiles share one colour scale with a colourbar; gradient crops are shown
pixel for pixel; no text is smaller than the figure style's smallest size. The downsampling summary keeps its
log axes within the range the numbers mean something. All on seeded noise (no model), in a few seconds."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.image import AxesImage
from matplotlib.text import Text

from gradviz.downsampling.render import PREDICTED_FLOOR, _example_comparison, stage_figure, summary_figure
from gradviz.io import plotting as plots
from gradviz.report.render import make_figures
from gradviz.report.result import LayerResult, Report
from gradviz.spectrum import checkerboard_metrics

SIZE = 64
N_NULL = 200  # the fewest null draws the meter accepts


def _layer(name: str, stride: int, grid: float, seed: int) -> LayerResult:
    """Two noise gradients of SIZE px plus ``grid`` times a period-2 checkerboard."""
    checkerboard = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(SIZE // 2, SIZE // 2)
    g = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) + grid * checkerboard
    m = checkerboard_metrics(g, stride, n_null=N_NULL)
    power = torch.fft.fft2(g - g.mean((-2, -1), keepdim=True), norm="ortho").abs().square().sum((0, 1))
    coherent = torch.fft.fft2(g.mean(0) - g.mean(0).mean((-2, -1), keepdim=True), norm="ortho").abs().square().sum(0)
    return LayerResult(name, stride, f"deepdream({name})", m, power, coherent, g[0])


@pytest.fixture(scope="module")
def report() -> Report:
    """Three layers: a strong period-2 grid (S=2), none (S=4), a weak one (S=8) whose threshold is set to inf."""
    layers = [_layer("a", 2, 1.0, 0), _layer("b", 4, 0.0, 1), _layer("c", 8, 0.3, 2)]
    m = layers[2].metrics
    layers[2].metrics = dataclasses.replace(m, octave_threshold=[math.inf, *m.octave_threshold[1:]])
    return Report("toy", "random (seed 0)", "noise", 2, SIZE, 0, "cpu", "gradient", layers)


@pytest.fixture(scope="module")
def figures(report):
    return make_figures(report)


def _images(fig) -> list[AxesImage]:
    return [im for ax in fig.axes for im in ax.get_images()]


def test_the_figure_names(figures):
    assert list(figures) == ["headline.png", "spectra.png", "gradients.png", "tiles.png", "radial.png"]


def test_the_fixture_has_a_grid_and_no_grid(report):
    assert [layer.metrics.grid_detected for layer in report.layers[:2]] == [True, False]


def test_headline_draws_the_reports_numbers(report, figures):
    excess_panel, share_panel = figures["headline.png"].axes[:2]
    metrics = [layer.metrics for layer in report.layers]
    lines = {line.get_label(): line for line in excess_panel.get_lines()}
    for j in range(3):  # one series per octave: its line holds the excess of every layer that has that octave
        y = lines[f"period {2 ** (j + 1)} px"].get_ydata()
        expected = [m.octave_excess[j] if j < len(m.octave_excess) else math.nan for m in metrics]
        np.testing.assert_array_equal(y, expected)
    # filled markers exactly where the octave's Holm-adjusted p < alpha, hollow elsewhere
    filled, hollow = set(), set()
    for line in excess_panel.get_lines():
        if line.get_marker() == "o" and line.get_linestyle() == "None":
            target = hollow if line.get_markerfacecolor() == "white" else filled
            target.update(float(y) for y in line.get_ydata())
    detected = {x for m in metrics for x, q in zip(m.octave_excess, m.octave_p_adjusted) if q < m.alpha}
    assert filled == detected and detected
    assert hollow == {x for m in metrics for x in m.octave_excess} - detected
    # null bands: one vertical bar per (layer, octave) from the 5% to the 95% point
    bars = {(round(float(a), 12), round(float(b), 12)) for coll in excess_panel.collections
            for (_, a), (_, b) in (seg for seg in coll.get_segments())}
    assert bars == {(round(lo, 12), round(hi, 12)) for m in metrics for lo, hi in m.octave_null_band}
    # thresholds: dashes at the finite ones; the inf one is not drawn
    dashes = {float(y) for line in excess_panel.get_lines() if line.get_marker() == "_" for y in line.get_ydata()
              if np.isfinite(y)}
    assert dashes == {t for m in metrics for t in m.octave_threshold if math.isfinite(t)}
    assert math.inf in metrics[2].octave_threshold
    # the verdict is in the layer's tick label, in red for a grid
    labels = [t.get_text() for t in excess_panel.get_xticklabels()]
    assert labels[0].startswith("a\nS = 2\nGRID") and "no grid" in labels[1]
    # energy shares beside a white spectrum's
    shares = [line for line in share_panel.get_lines() if line.get_label() == "period 2 px"][0]
    np.testing.assert_array_equal(shares.get_ydata(), [m.octave_fractions[0] for m in metrics])
    whites = {float(y) for line in share_panel.get_lines() if line.get_marker() == "_" for y in line.get_ydata()
              if np.isfinite(y)}
    assert whites == {x for m in metrics for x in m.octave_null_fractions}
    assert excess_panel.get_yscale() == share_panel.get_yscale() == "log"


@pytest.mark.parametrize("name", ["spectra.png", "tiles.png", "gradients.png"])
def test_one_colour_scale_and_a_colourbar(figures, name):
    images = _images(figures[name])
    assert len(images) == {"spectra.png": 6, "tiles.png": 3, "gradients.png": 6}[name]
    assert len({(im.norm.vmin, im.norm.vmax, type(im.norm)) for im in images}) == 1
    assert sum(im.colorbar is not None for im in images) == 1


def test_spectra_are_shares_of_their_total_with_the_lattice_marked(report, figures):
    fig = figures["spectra.png"]
    layer = report.layers[1]  # S = 4
    ax = next(a for a in fig.axes if a.get_title() == "b (S=4)")
    shown = ax.get_images()[0].get_array()
    np.testing.assert_allclose(np.asarray(shown)[:SIZE, :SIZE][SIZE // 2, 0],
                               np.log10(np.fft.fftshift(layer.incoherent_power.double().numpy())[SIZE // 2, 0]
                                        / layer.incoherent_power.double().sum().item()))
    assert sorted(ax.xaxis.get_minorticklocs()) == [k / 4 for k in range(-2, 3)]  # lattice k/S up to +-1/2


def test_gradient_crops_are_pixel_for_pixel(report, figures):
    fig = figures["gradients.png"]
    crops = [ax.get_images()[0] for ax in fig.axes if ax.get_title().startswith("crop at")]
    assert len(crops) == len(report.layers)
    for im, layer in zip(crops, report.layers):
        assert im.get_array().shape == (plots.CROP_SIZE, plots.CROP_SIZE)
        assert im.get_interpolation() == "nearest"
        g = layer.example_gradient.double().sum(0).numpy()
        y, x = plots.crop_origin(layer.example_gradient)
        scale = np.percentile(np.abs(g), plots.GRADIENT_PERCENTILE)
        np.testing.assert_allclose(im.get_array(), g[y:y + plots.CROP_SIZE, x:x + plots.CROP_SIZE] / scale)


@pytest.mark.parametrize("name", ["headline.png", "spectra.png", "gradients.png", "tiles.png", "radial.png"])
def test_no_small_text(figures, name):
    fig = figures[name]
    FigureCanvasAgg(fig)
    fig.draw_without_rendering()  # creates the tick labels
    sizes = {t.get_fontsize() for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible()}
    assert min(sizes) >= plots.SMALL_TEXT_SIZE >= 8
    assert plots.FIGURE_DPI >= 110


def test_a_one_layer_report_without_tests_draws():
    layer = _layer("x", 2, 0.0, 3)
    layer.metrics = checkerboard_metrics(layer.example_gradient[None], 2, n_null=0)
    figures = make_figures(Report("toy", "random", "noise", 1, SIZE, 0, "cpu", "gradient", [layer]))
    assert figures["headline.png"].axes[0].get_xticklabels()[0].get_text().endswith("not tested")


def test_log_ticks_are_plain_numbers():
    assert plots.nice_log_ticks(0.7, 1.5) == [0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5]
    assert plots.nice_log_ticks(0.5, 120) == [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]


def test_compare_summary_log_axes_stop_at_the_floor():
    fig = summary_figure(_example_comparison())
    predicted = next(ax for ax in fig.axes if ax.get_title().startswith("kernel-predicted"))
    assert predicted.get_yscale() == "log" and predicted.get_ylim()[0] >= PREDICTED_FLOOR / 2


def test_compare_stage_figure_shares_its_scales():
    comp = _example_comparison()
    comp.variants.append(dataclasses.replace(comp.variants[0], name="copy", spectra={
        "layer1": comp.variants[0].spectra["layer1"] * 10}))  # ten times the power: the same shares
    fig = stage_figure(comp, "layer1")
    spectra = [ax.get_images()[0] for ax in fig.axes if ax.get_title().startswith("excess")]
    assert len(spectra) == 2 and len({(im.norm.vmin, im.norm.vmax) for im in spectra}) == 1
    np.testing.assert_allclose(spectra[0].get_array(), spectra[1].get_array())
    assert sum(im.colorbar is not None for ax in fig.axes for im in ax.get_images()) == 2
