"""The jitter figure: its compute (scripts/jitter_study.py, part ``figure``) and its drawing
(gradviz.optvis.render.jitter_figure): the panels, the numbers they draw, and seeded determinism."""

import importlib.util
import itertools
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gradviz.io import plotting as plots
from gradviz.optvis.parameterization import start_images
from gradviz.optvis.render import JitterCondition, JitterFigureData, jitter_figure, lattice_bins
from gradviz.spectrum import SpectrumAccumulator, checkerboard_metrics

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "jitter_study.py"
LAYER = "features.7"  # vgg11 at random init: the ReLU after conv3_1, stride 4 (periods 2 and 4)
SIZE, STEPS, JITTER, SEEDS = 32, 2, 2, [0, 1]
CROP = 16  # of the 32 px images: the centre 16 x 16 px


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("jitter_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture(scope="module")
def comparison(study, vgg11):
    return study.compare_jitter("vgg11", "random", LAYER, SEEDS, SIZE, STEPS, JITTER, model=vgg11)


@pytest.fixture(scope="module")
def figure(study, comparison):
    data = study.figure_data(comparison)
    return data, jitter_figure(data, crop=CROP)


def _artists(ax, gid: str):
    return [a for a in [*ax.lines, *ax.collections] if a.get_gid() == gid]


def test_the_compute_is_the_meter_on_the_dream_update(comparison):
    assert [c.label for c in comparison.conditions] == ["no jitter", f"jitter d = {JITTER}"]
    assert comparison.stride == 4 and comparison.seeds == SEEDS and comparison.size == SIZE
    for cond in comparison.conditions:
        assert [r.seed for r in cond.runs] == SEEDS
        for run in cond.runs:
            assert run.image.shape == (3, SIZE, SIZE) and len(run.metrics.octave_excess) == 2
            assert run.power.shape == (SIZE, SIZE) and 0 < float(run.power.sum()) <= 1  # a share of unit energy
    # the readings are checkerboard_metrics of x_final - x_start (its defaults); the power is what its line test reads
    for cond in comparison.conditions:
        for run in cond.runs:
            update = run.image - start_images("noise", SIZE, seed=run.seed)[0]
            again = checkerboard_metrics(update, comparison.stride)
            assert again.octave_excess == pytest.approx(run.metrics.octave_excess, rel=1e-6)
            assert again.octave_p_adjusted == run.metrics.octave_p_adjusted
            acc = SpectrumAccumulator(comparison.stride)
            acc.add(update)
            torch.testing.assert_close(acc.periodic_power_sum, run.power, rtol=1e-6, atol=1e-12)


def test_the_figure_has_its_panels(figure, comparison):
    data, fig = figure
    assert len(fig.axes) == 3 * 2 + 2  # per condition: whole image, crop, spectrum; then colourbar, excess panel
    whole, crop, spectrum = fig.axes[0:3]
    assert "dream image, seed 0" in whole.get_title() and "enlarged 4x" in crop.get_title()
    assert "mean of 2 seeds" in spectrum.get_title()
    assert fig.axes[6].get_ylabel() == "log10 share of the update's power"  # the one colourbar
    excess = fig.axes[7]
    assert "line excess per octave, 2 seeds" in excess.get_title()
    assert [t.get_text().split("\n")[0] for t in excess.get_xticklabels()] == ["no", "jitter"] * 2
    for row, cond in enumerate(comparison.conditions):
        assert fig.axes[3 * row].get_ylabel().startswith(cond.label)


def test_the_images_are_the_dreams_and_their_centres(figure, comparison):
    data, fig = figure
    lo, hi = (SIZE - CROP) // 2, (SIZE + CROP) // 2
    for row, cond in enumerate(comparison.conditions):
        image = cond.runs[0].image.numpy().transpose(1, 2, 0)
        np.testing.assert_array_equal(fig.axes[3 * row].images[0].get_array(), np.clip(image, 0, 1))
        np.testing.assert_array_equal(fig.axes[3 * row + 1].images[0].get_array(), np.clip(image[lo:hi, lo:hi], 0, 1))


def test_the_spectra_are_the_mean_power_on_one_scale(figure, comparison):
    data, fig = figure
    limits = plots.log_power_limits([c.power for c in data.conditions])
    for row, cond in enumerate(comparison.conditions):
        mean = torch.stack([r.power for r in cond.runs]).mean(0).numpy()
        np.testing.assert_allclose(data.conditions[row].power, mean, rtol=1e-12)
        shown = fig.axes[3 * row + 2].images[0]
        np.testing.assert_array_equal(shown.get_array().filled(np.nan), plots.log_power(mean))
        assert shown.get_clim() == pytest.approx(limits)  # one colour scale for both conditions
        spots = fig.axes[3 * row + 2].collections[0]  # the lattice bins, drawn in their own colour
        np.testing.assert_allclose(spots.get_array(), lattice_bins(mean, 4)[2])
        assert len(spots.get_offsets()) == 5 * 5 - 1


def test_the_excess_panel_draws_the_computed_numbers(figure, comparison):
    data, fig = figure
    ax = fig.axes[7]
    for i, cond in enumerate(comparison.conditions):
        summary = cond.summary()
        for j in range(2):
            excess = np.array([r.metrics.octave_excess[j] for r in cond.runs])
            detected = np.array([r.metrics.octave_p_adjusted[j] < 0.05 for r in cond.runs])
            (filled,), (hollow,) = _artists(ax, f"detected {i} {j}"), _artists(ax, f"not detected {i} {j}")
            np.testing.assert_array_equal(filled.get_ydata(), excess[detected])
            np.testing.assert_array_equal(hollow.get_ydata(), excess[~detected])
            (mean,) = _artists(ax, f"mean {i} {j}")
            assert mean.get_ydata()[0] == pytest.approx(summary["octave_excess"][j]["mean"], rel=1e-12)
            assert data.conditions[i].sd[j] == pytest.approx(summary["octave_excess"][j]["sd"], rel=1e-12)
            assert data.conditions[i].sd[j] == pytest.approx(np.std(excess, ddof=1), rel=1e-12)
            (threshold,) = _artists(ax, f"threshold {i} {j}")
            expected = np.mean([r.metrics.octave_threshold[j] for r in cond.runs])
            assert threshold.get_ydata()[0] == pytest.approx(expected, rel=1e-12)
            (band,) = _artists(ax, f"chance {i} {j}")
            seg = band.get_segments()[0]
            band_mean = np.mean([r.metrics.octave_null_band[j] for r in cond.runs], 0)
            assert [seg[0][1], seg[1][1]] == pytest.approx(band_mean)
    notes = "\n".join(t.get_text() for t in ax.texts)
    for p in comparison.paired():
        assert f"lower with jitter in {p['lower_with_jitter']}/2 seeds" in notes
        assert f"p = {p['sign_flip_p']:.2g}" in notes
    labels = [t.get_text() for t in ax.get_xticklabels()]
    counts = [int(sum(r.metrics.octave_p_adjusted[j] < 0.05 for r in c.runs))
              for j in range(2) for c in comparison.conditions]
    assert [lab.rsplit("\n", 1)[1] for lab in labels] == [f"{k}/2 det." for k in counts]


def test_seeded_runs_repeat_exactly(study, comparison, vgg11):
    again = study.compare_jitter("vgg11", "random", LAYER, SEEDS, SIZE, STEPS, JITTER, model=vgg11)
    for a, b in zip(comparison.conditions, again.conditions):
        for ra, rb in zip(a.runs, b.runs):
            assert torch.equal(ra.image, rb.image) and torch.equal(ra.power, rb.power)
            assert ra.metrics.octave_excess == rb.metrics.octave_excess
            assert ra.metrics.octave_p_adjusted == rb.metrics.octave_p_adjusted
    assert again.to_dict() | {"seconds": 0} == comparison.to_dict() | {"seconds": 0}
    # the jitter changed the dream: the two conditions differ
    assert not torch.equal(comparison.conditions[0].runs[0].image, comparison.conditions[1].runs[0].image)


def test_sign_flip_p_is_exact(study):
    assert study.sign_flip_p(np.array([-1.0, -2.0, -3.0])) == 0.25  # only all-minus and all-plus are as far
    assert study.sign_flip_p(np.array([1.0, -1.0])) == 1.0
    v = np.array([0.3, -1.2, -0.4, -0.9, 0.1])
    brute = np.mean([abs(np.dot(s, v)) >= abs(v.sum()) - 1e-12 for s in itertools.product((1, -1), repeat=5)])
    assert study.sign_flip_p(v) == brute


def test_the_layer_is_chosen_on_the_no_jitter_condition_only(study):
    def comp(layer, detected, excess, jittered):
        runs = [SimpleNamespace(metrics=SimpleNamespace(grid_detected=d, lattice_excess=e))
                for d, e in zip(detected, excess)]
        other = [SimpleNamespace(metrics=SimpleNamespace(grid_detected=True, lattice_excess=jittered))] * 3
        return SimpleNamespace(layer=layer, conditions=[SimpleNamespace(runs=runs), SimpleNamespace(runs=other)])
    a = comp("a", [True, False, False], [3, 1, 1], 100.0)
    b = comp("b", [True, True, False], [2, 2, 1], 0.1)
    c = comp("c", [True, True, False], [3, 3, 1], 0.1)
    assert study.select_layer([a, b, c]).layer == "c"  # most detections, then the larger excess; jitter ignored


def test_the_crop_is_enlarged_about_zoom_times_on_the_page():
    n_oct, seeds = 1, list(range(5))
    conds = [JitterCondition(label, np.full((3, 224, 224), 0.5), np.ones((224, 224)), np.ones((5, n_oct)),
                             np.zeros((5, n_oct), bool), np.ones(n_oct), np.zeros(n_oct), np.array([[0.5, 2.0]]),
                             np.array([2.0]), 0) for label in ("no jitter", "jitter d = 4")]
    fig = jitter_figure(JitterFigureData("t", 2, seeds, 0, conds, ["note"], "footer"))
    fig.draw_without_rendering()
    inches = fig.axes[1].get_window_extent().width / fig.dpi
    assert inches * plots.FIGURE_DPI / 48 > 3.5  # each pixel of the 48 px crop is about 4 x 4 screen pixels
