"""The gradient-spectrum report: plan the layers and measure (:mod:`~gradviz.report.measure`,
no drawing), then render figures and the page (:mod:`~gradviz.report.render`)."""

from gradviz.report.measure import LayerResult, LayerSpec, Report, build_report, measure_layers, plan_layers

__all__ = ["LayerResult", "LayerSpec", "Report", "build_report", "measure_layers", "plan_layers"]
