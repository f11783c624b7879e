"""Attribution maps without the grid: :class:`ShiftAverage` wraps any captum attribution."""

from gradviz.attribution.shift_average import SHIFTS_PER_PASS, ShiftAverage, all_shifts, choose_shifts, shift_average

__all__ = ["SHIFTS_PER_PASS", "ShiftAverage", "all_shifts", "choose_shifts", "shift_average"]
