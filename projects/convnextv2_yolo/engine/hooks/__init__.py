from .backbone_freeze_hook import BackboneFreezeHook  # noqa: F401
from .close_mosaic_hook import CloseMosaicHook  # noqa: F401
from .e2e_loss_schedule_hook import E2ELossScheduleHook  # noqa: F401
from .results_csv_hook import ResultsCSVHook  # noqa: F401
from .training_trace_hook import TrainingTraceHook  # noqa: F401
from .validation_plots_hook import ValidationPlotsHook  # noqa: F401
from .yolo_ema_hook import YOLOEMAHook  # noqa: F401
from .yolo_param_scheduler_hook import YOLOParamSchedulerHook  # noqa: F401
