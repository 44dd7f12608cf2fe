"""Fake of torch_npu.profiler.experimental_config (2.14.0 signature, warn-and-reset checks)."""

import warnings

from ._constant import Constant, print_warn_msg

__all__ = ["_ExperimentalConfig", "supported_profiler_level", "supported_ai_core_metrics",
           "supported_export_type", "ProfilerLevel", "AiCMetrics", "ExportType"]


class ProfilerLevel:
    Level0 = Constant.LEVEL0
    Level1 = Constant.LEVEL1
    Level2 = Constant.LEVEL2
    Level_none = Constant.LEVEL_NONE


class AiCMetrics:
    PipeUtilization = Constant.AicPipeUtilization
    ArithmeticUtilization = Constant.AicArithmeticUtilization
    Memory = Constant.AicMemory
    MemoryL0 = Constant.AicMemoryL0
    MemoryUB = Constant.AicMemoryUB
    ResourceConflictRatio = Constant.AicResourceConflictRatio
    L2Cache = Constant.AicL2Cache
    MemoryAccess = Constant.AicMemoryAccess
    AiCoreNone = Constant.AicMetricsNone


class ExportType:
    Db = Constant.Db
    Text = Constant.Text


def supported_profiler_level():
    return {ProfilerLevel.Level0, ProfilerLevel.Level1, ProfilerLevel.Level2, ProfilerLevel.Level_none}


def supported_ai_core_metrics():
    return {value for name, value in vars(AiCMetrics).items() if not name.startswith("_")}


def supported_export_type():
    return {ExportType.Db, ExportType.Text}


_BOOLS = ("l2_cache", "msprof_tx", "mstx", "record_op_args", "op_attr", "sys_io", "sys_interconnection")


class _ExperimentalConfig:
    def __init__(
        self,
        profiler_level=Constant.LEVEL0,
        aic_metrics=Constant.AicPipeUtilization,
        l2_cache=False,
        msprof_tx=False,
        mstx=False,
        data_simplification=True,
        record_op_args=False,
        op_attr=False,
        gc_detect_threshold=None,
        export_type=ExportType.Text,
        host_sys=None,
        mstx_domain_include=None,
        mstx_domain_exclude=None,
        sys_io=False,
        sys_interconnection=False,
    ):
        self.profiler_level = profiler_level
        self.aic_metrics = aic_metrics
        self.l2_cache = l2_cache
        self.msprof_tx = msprof_tx
        self.mstx = mstx
        self.data_simplification = data_simplification
        self.record_op_args = record_op_args
        self.op_attr = op_attr
        self.gc_detect_threshold = gc_detect_threshold
        self.export_type = self._export_types(export_type)
        self.host_sys = host_sys or []
        self.mstx_domain_include = mstx_domain_include or []
        self.mstx_domain_exclude = mstx_domain_exclude or []
        self.sys_io = sys_io
        self.sys_interconnection = sys_interconnection
        self._check_params()

    @property
    def tx_enabled(self):
        return self.msprof_tx or self.mstx

    @property
    def with_gc(self):
        return self.gc_detect_threshold is not None

    @staticmethod
    def _export_types(export_type):
        if isinstance(export_type, str) and export_type:
            return [export_type]
        if isinstance(export_type, list) and export_type:
            return list(set(export_type))
        print_warn_msg(f"Invalid parameter export_type: {export_type}, reset it to text.")
        return [ExportType.Text]

    def _check_params(self):
        # Same outcomes as the real checks: bad values are printed about and reset, never raised.
        coarse = self.profiler_level in (Constant.LEVEL0, Constant.LEVEL_NONE)
        if coarse and self.aic_metrics != Constant.AicMetricsNone:
            print_warn_msg("Please use level1 or level2 if you want to collect aic metrics, reset aic metrics to None!")
            self.aic_metrics = Constant.AicMetricsNone
        for name in _BOOLS:
            if not isinstance(getattr(self, name), bool):
                print_warn_msg(f"Invalid parameter {name}, which must be of bool type, reset it to False.")
                setattr(self, name, False)
        if self.msprof_tx:
            warnings.warn("The parameter msprof_tx will be deprecated. Please use the new parameter mstx instead.")
        if self.profiler_level == ProfilerLevel.Level_none and not self.tx_enabled:
            self.mstx = True
            print_warn_msg("Parameter mstx or msprof_tx must be True if profiler_level is set to Level_none.")
        if self.data_simplification is not None and not isinstance(self.data_simplification, bool):
            print_warn_msg("Invalid parameter data_simplification, which must be of bool type, reset it to default.")
            self.data_simplification = True
        if self.profiler_level not in supported_profiler_level():
            print_warn_msg("Invalid parameter profiler_level, reset it to ProfilerLevel.Level0.")
            self.profiler_level = ProfilerLevel.Level0
        if self.aic_metrics not in supported_ai_core_metrics():
            print_warn_msg("Invalid parameter aic_metrics, reset it to default.")
            level0 = self.profiler_level == ProfilerLevel.Level0
            self.aic_metrics = AiCMetrics.AiCoreNone if level0 else AiCMetrics.PipeUtilization
        if not all(item in (ExportType.Text, ExportType.Db) for item in self.export_type):
            print_warn_msg("Invalid parameter export_type, reset it to text.")
            self.export_type = [ExportType.Text]
        if self.op_attr and ExportType.Db not in self.export_type:
            print_warn_msg("op_attr switch is invalid with export type set as text.")
            self.op_attr = False
        if self.gc_detect_threshold is not None:
            if isinstance(self.gc_detect_threshold, bool) or not isinstance(self.gc_detect_threshold, (int, float)):
                print_warn_msg("Parameter gc_detect_threshold is not int or float type, reset it to default.")
                self.gc_detect_threshold = None
            elif self.gc_detect_threshold < 0.0:
                print_warn_msg("Parameter gc_detect_threshold can not be negative, reset it to default.")
                self.gc_detect_threshold = None

    def as_dict(self):
        """The values in effect after the checks (the real one dumps them to profiler_info.json)."""
        return {name: value for name, value in vars(self).items() if not name.startswith("_")}
