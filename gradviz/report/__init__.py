"""The gradient-spectrum report: plan the layers and measure (:mod:`~gradviz.report.measure`, no
drawing) into a :class:`~gradviz.report.result.Report` (its table: :mod:`~gradviz.report.table`),
then render figures and the pages (:mod:`~gradviz.report.render` writes the folder; the figures are
drawn by :mod:`~gradviz.report.figures`, the only other module here that imports matplotlib; the HTML
pages come from :mod:`~gradviz.report.page`)."""

from gradviz.report.measure import LayerSpec, build_report, measure_layers, plan_layers
from gradviz.report.result import LayerResult, Report

__all__ = ["LayerResult", "LayerSpec", "Report", "build_report", "measure_layers", "plan_layers"]
