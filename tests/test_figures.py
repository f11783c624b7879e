"""The report's figures say what the numbers say: the headline draws the report's excess values, null bands,
thresholds and detections; spectra (the one the line test reads) and tiles share one colour scale with a
colourbar; gradient crops are where the lattice is strongest, shown pixel for pixel; no aggregate excess is
printed beside a p-value; no text is smaller than the figure style's smallest size. The downsampling summary
keeps its log axes within the range the numbers mean something. All on seeded noise (no model), in seconds."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.image import AxesImage
from matplotlib.text import Text

from gradviz.downsampling.compare import ComparedLayer
from gradviz.downsampling.render import PREDICTED_FLOOR, _example_comparison, stage_figure, summary_figure
from gradviz.io import plotting as plots
from gradviz.report import figures as report_figures
from gradviz.report.render import make_figures
from gradviz.report.result import LayerResult, Report
from gradviz.spectrum import SpectrumAccumulator, checkerboard_metrics
from gradviz.upsampling.generators import GeneratorResult
from gradviz.upsampling.render import excess_figure, gan_final_figure, samples_figure

SIZE = 64
N_NULL = 200  # the fewest null draws the meter accepts


CHECKERBOARD = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])


def _layer(name: str, stride: int, grid: float, seed: int) -> LayerResult:
    """Two noise gradients of SIZE px plus ``grid`` times a period-2 checkerboard; the spectra as the
    report keeps them (``periodic_power`` from the meter's accumulator)."""
    g = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
    g = g + grid * CHECKERBOARD.repeat(SIZE // 2, SIZE // 2)
    m = checkerboard_metrics(g, stride, n_null=N_NULL)
    power = torch.fft.fft2(g - g.mean((-2, -1), keepdim=True), norm="ortho").abs().square().sum((0, 1))
    coherent = torch.fft.fft2(g.mean(0) - g.mean(0).mean((-2, -1), keepdim=True), norm="ortho").abs().square().sum(0)
    acc = SpectrumAccumulator(stride)
    acc.add(g)
    return LayerResult(name, stride, f"deepdream({name})", m, power, coherent, g[0], acc.periodic_power())


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
    # the verdict is in the layer's tick label, in red for a grid; not detected is not "no grid"
    labels = [t.get_text() for t in excess_panel.get_xticklabels()]
    assert labels[0] == f"a\nS = 2\nGRID (p {metrics[0].p_value:.2g})"
    assert labels[1] == f"b\nS = 4\nnot detected (p {metrics[1].p_value:.2g})"
    assert not any("no grid" in label for label in labels)
    # a tick near the top value: the highest one is within NEAR_TICK of it
    top = max(y for line in excess_panel.get_lines() for y in line.get_ydata() if np.isfinite(y))
    assert 1 <= top / max(excess_panel.get_yticks()) <= report_figures.NEAR_TICK
    # energy shares: a description, with no white-spectrum reference beside them
    shares = [line for line in share_panel.get_lines() if line.get_label() == "period 2 px"][0]
    np.testing.assert_array_equal(shares.get_ydata(), [m.octave_fractions[0] for m in metrics])
    assert all(line.get_marker() == "o" for line in share_panel.get_lines())
    assert share_panel.get_legend() is None
    assert share_panel.get_title(loc="left") == ("Share of the gradient's energy on each octave: a description, "
                                                  "not a test")
    assert excess_panel.get_yscale() == share_panel.get_yscale() == "log"


@pytest.mark.parametrize("name", ["spectra.png", "tiles.png", "gradients.png"])
def test_one_colour_scale_and_a_colourbar(figures, name):
    images = _images(figures[name])
    assert len(images) == {"spectra.png": 6, "tiles.png": 3, "gradients.png": 6}[name]
    assert len({(im.norm.vmin, im.norm.vmax, type(im.norm)) for im in images}) == 1
    assert sum(im.colorbar is not None for im in images) == 1


def _shares(power) -> np.ndarray:
    """log10 of each bin's share of the total, DC at the centre (as the spectra show them, before the repeat)."""
    p = power.double().numpy()
    with np.errstate(divide="ignore"):
        return np.log10(np.fft.fftshift(p / p.sum()))


@pytest.mark.parametrize("periodic", [True, False])
def test_spectra_show_what_the_line_test_reads_with_the_lattice_marked(report, periodic):
    """The top row is the periodic components' spectrum (the line test's), or the images' mean spectrum
    when a layer does not keep it; both said in the row label. Bins are shares of their spectrum's total."""
    layers = report.layers if periodic else [dataclasses.replace(x, periodic_power=None) for x in report.layers]
    fig = report_figures.spectra_figure([f"{x.name} (S={x.stride})" for x in layers], layers, "toy")
    layer = layers[1]  # S = 4
    ax = next(a for a in fig.axes if a.get_title() == "b (S=4)")
    expected = layer.periodic_power if periodic else layer.incoherent_power
    assert not torch.allclose(layer.incoherent_power.double(), report.layers[1].periodic_power.double())  # they differ
    shown = np.asarray(ax.get_images()[0].get_array())
    centre = np.isfinite(_shares(expected))
    centre[SIZE // 2, SIZE // 2] = False  # DC: blank (the means are removed)
    np.testing.assert_allclose(shown[:SIZE, :SIZE][centre], _shares(expected)[centre])
    label = fig.axes[0].get_ylabel()
    assert ("what the line test reads" in label) == periodic and (label.startswith("mean of the images'") != periodic)
    assert sorted(ax.xaxis.get_minorticklocs()) == [k / 4 for k in range(-2, 3)]  # lattice k/S up to +-1/2


def test_spectra_draw_the_border_bins_whole_and_unframed(figures):
    """Pixel centres at k/W, the Nyquist row and column (the period-2 lines at +-1/2) whole inside the axes,
    no frame over them."""
    ax = next(a for a in figures["spectra.png"].axes if a.get_title() == "a (S=2)")
    half = 0.5 / SIZE
    np.testing.assert_allclose(ax.get_images()[0].get_extent(), [-0.5 - half, 0.5 + half, 0.5 + half, -0.5 - half])
    np.testing.assert_allclose(ax.get_xlim(), [-0.5 - half, 0.5 + half])
    np.testing.assert_allclose(sorted(ax.get_ylim()), [-0.5 - half, 0.5 + half])
    assert not ax.get_frame_on()


def test_layer_figures_wrap_after_four_layers():
    layers = [_layer(f"l{i}", 2, 0.0, 10 + i) for i in range(6)]
    figures = make_figures(Report("toy", "random", "noise", 2, SIZE, 0, "cpu", "gradient", layers))
    for name, per_layer in (("spectra.png", 2), ("gradients.png", 2), ("tiles.png", 1)):
        panels = [ax for ax in figures[name].axes if ax.get_images()]
        assert len(panels) == per_layer * 6
        assert len({round(ax.get_position().x0, 3) for ax in panels}) == report_figures.MAX_COLUMNS == 4


def test_gradient_crops_are_pixel_for_pixel_on_their_own_scale(report, figures):
    fig = figures["gradients.png"]
    crops = [ax.get_images()[0] for ax in fig.axes if ax.get_title().startswith("crop at")]
    assert len(crops) == len(report.layers)
    for im, layer in zip(crops, report.layers):
        assert im.get_array().shape == (plots.CROP_SIZE, plots.CROP_SIZE)
        assert im.get_interpolation() == "nearest"
        g = layer.example_gradient.double().sum(0).numpy()
        y, x = plots.crop_origin(layer.example_gradient, report_figures.crop_period(layer))
        crop = g[y:y + plots.CROP_SIZE, x:x + plots.CROP_SIZE]
        np.testing.assert_allclose(im.get_array(), crop / np.percentile(np.abs(crop), plots.CROP_PERCENTILE))


def _planted(stride: int = 2) -> tuple[torch.Tensor, tuple[int, int]]:
    """A noise map (3, 128, 128) with a strong edge, and a faint period-2 checkerboard patch away from it,
    filling the 32 px window at the returned origin (on the half-window grid)."""
    g = 0.05 * torch.randn(3, 128, 128, generator=torch.Generator().manual_seed(7))
    g[:, :, 101:] += 5.0  # an edge at an odd column: it has some period-2 energy too, and far more energy
    g[:, 64:96, 16:48] += 0.3 * CHECKERBOARD.repeat(16, 16)
    return g, (64, 16)


def test_the_crop_is_where_the_lattice_is_strongest_not_where_the_energy_is():
    g, origin = _planted()
    assert plots.crop_origin(g, 2) == origin
    energy = g.sum(0).double().square()
    windows = {(y, x): float(energy[y:y + 32, x:x + 32].sum()) for y in range(0, 97, 16) for x in range(0, 97, 16)}
    assert max(windows, key=windows.get)[1] >= 80  # the most energy is at the edge: the old choice
    assert all(plots.crop_origin(g, p) == origin for p in (4, 8, 16, 32))  # period 2 is on their lattices too
    assert plots.crop_origin(g, 1)[1] >= 80  # no lattice: the most energy
    fig, ax = plots.new_figure()
    plots.plot_gradient_map(ax, g, crop=(*origin, 32), zoom=True)
    shown = np.asarray(ax.get_images()[0].get_array())
    assert np.percentile(np.abs(shown), plots.CROP_PERCENTILE) == pytest.approx(1.0)  # no saturation at +-1


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
    assert plots.line_label(layer.metrics) == "not tested"


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
    spectra = [ax.get_images()[0] for ax in fig.axes if ax.get_title().startswith("lines: ")]
    assert len(spectra) == 2 and len({(im.norm.vmin, im.norm.vmax) for im in spectra}) == 1
    np.testing.assert_allclose(spectra[0].get_array(), spectra[1].get_array())
    assert sum(im.colorbar is not None for ax in fig.axes for im in ax.get_images()) == 2


def _grid_metrics(grid: float, seed: int, stride: int = 4):
    g = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
    return checkerboard_metrics(g + grid * CHECKERBOARD.repeat(SIZE // 2, SIZE // 2), stride, n_null=N_NULL)


def test_line_labels_are_the_octaves_own_numbers():
    """A detected line: its period, its own excess and its Holm-adjusted p; else "not detected" with the
    layer's p. Never the all-lattice excess."""
    grid, none = _grid_metrics(0.5, 0), _grid_metrics(0.0, 1)
    assert grid.grid_detected and not none.grid_detected
    j = max((k for k, q in enumerate(grid.octave_p_adjusted) if q < grid.alpha), key=lambda k: grid.octave_excess[k])
    assert plots.strongest_line(grid) == (2 ** (j + 1), grid.octave_excess[j], grid.octave_p_adjusted[j], True)
    assert plots.line_label(grid) == (f"period {2 ** (j + 1)}: {grid.octave_excess[j]:.3g}x "
                                      f"(Holm p {grid.octave_p_adjusted[j]:.2g})")
    assert plots.line_label(none) == f"not detected (p = {none.p_value:.2g})"
    assert plots.line_label(grid.to_dict()) == plots.line_label(grid)  # as study.json keeps them
    assert f"{grid.lattice_excess:.3g}" not in plots.line_label(grid)


def _comparison_with_a_grid():
    comp = _example_comparison()
    stage = comp.variants[0].layers[0]
    grid = dataclasses.replace(comp.variants[0], name="grid", layers=[ComparedLayer(
        "layer1", 4, 1.0, 1.0, _grid_metrics(0.5, 0))])
    comp.variants.append(grid)
    return comp, [stage, grid.layers[0]]


def test_compare_stage_titles_name_the_detected_octave():
    comp, stages = _comparison_with_a_grid()
    fig = stage_figure(comp, "layer1")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title().startswith("lines: ")]
    assert titles == [f"lines: {plots.line_label(s.metrics)}" for s in stages]
    assert titles[1].startswith("lines: period 2: ") and titles[0].startswith("lines: not detected (p = ")
    for s, title in zip(stages, titles):
        assert f"{s.metrics.lattice_excess:.3g}" not in title


def test_compare_summary_fills_only_tested_significant_points():
    comp, stages = _comparison_with_a_grid()
    fig = summary_figure(comp)
    strongest = fig.axes[0]
    assert strongest.get_title().startswith("strongest line")
    dots = [line for line in strongest.get_lines() if line.get_marker() == "o"]
    lines = [plots.strongest_line(s.metrics) for s in stages]
    assert [float(d.get_ydata()[0]) for d in dots] == [line[1] for line in lines]  # the octave's own excess
    assert [d.get_markerfacecolor() != "white" for d in dots] == [line[3] for line in lines] == [False, True]
    assert all(f"{s.metrics.lattice_excess:.6g}" != f"{float(d.get_ydata()[0]):.6g}" for s, d in zip(stages, dots))
    for ax in fig.axes:  # panels without a test: squares, one style, "no test" in the title
        markers = {line.get_marker() for line in ax.get_lines()} - {"None", ""}
        if "no test" in ax.get_title():
            assert markers <= {"s", "v"}
        else:
            assert markers == {"o"}
    # the legend sits below the panels, clear of the title
    FigureCanvasAgg(fig)
    fig.draw_without_rendering()
    legend, title = fig.legends[0].get_window_extent(), fig._suptitle.get_window_extent()
    assert legend.y1 < min(ax.get_window_extent().y0 for ax in fig.axes) < title.y0


def test_generator_samples_are_labelled_with_the_line_test():
    g = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    images = g + 2.0 * CHECKERBOARD.repeat(8, 8)
    m = checkerboard_metrics(images, 4, n_null=N_NULL)
    fig = samples_figure([(GeneratorResult("toy", 0, 4, 16, m), images)], n_show=2)
    label = next(t.get_text() for t in fig.axes[0].texts)
    assert label == f"lines: {plots.line_label(m)}; lattice energy share {m.lattice_fraction:.3f} (a description)"
    assert label.startswith("lines: period 2: ") and f"{m.lattice_excess:.3g}" not in label


def test_upsampling_log_axes_have_plain_ticks_and_no_minor_labels():
    metrics = [_grid_metrics(0.5, 0).to_dict(), _grid_metrics(0.0, 1).to_dict()]
    rows = {name: {"runs": [m], "lattice_excess": {"values": [v], "mean": v},
                   "period2_excess": {"values": [m["octave_excess"][0]], "mean": m["octave_excess"][0]}}
            for name, m, v in (("a", metrics[0], 0.15), ("b", metrics[1], 7.0))}
    fig = excess_figure(rows, "toy")
    FigureCanvasAgg(fig)
    fig.draw_without_rendering()
    left = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert left == ["0.2", "0.5", "1", "2", "5"]
    run = {"g_p2_end": 1.2, "g_p2_end_p_adjusted": 0.5, "g_p2_second_half_geomean": 1.1, "d_p2_end": 25.0,
           "d_p2_end_p_adjusted": 0.001}
    summ = {"stride2": [run, {**run, "d_p2_end": 55.0}], "conv+pool": [{**run, "d_p2_end": 0.45}]}
    fig = gan_final_figure(summ, {"period2_excess": {"mean": 1.0, "sd": 0.05}}, 100)
    FigureCanvasAgg(fig)
    fig.draw_without_rendering()
    right = fig.axes[2]
    assert [t.get_text() for t in right.get_yticklabels(minor=True) if t.get_text()] == []
    assert [t.get_text() for t in right.get_yticklabels()] == ["0.5", "1", "2", "5", "10", "20", "50"]
