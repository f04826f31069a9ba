"""The cost planner (``semibench plan``): FLOPs per training step, time per job and device-hours
per task, before anything runs.

For every training job of a config's grid:

* **FLOPs per step** are counted with ``torch.utils.flop_counter.FlopCounterMode`` on the real
  backbone, built with random weights (no download: pretrained backbones are built with
  ``pretrained=False``; BERT takes the bert-base-uncased WordPiece vocabulary that the bundled
  MiniLM package ships, with bert-base's 30,522-token embedding). Which forward and backward
  passes a step makes, at which batch sizes, comes from running the algorithm's own ``forward``
  and ``compute_loss`` on a recording stand-in of the backbone (:class:`_Probe`), so extra passes
  (VAT's power iteration, MeanTeacher's and SimMatch's EMA teachers, MixMatch's mixed batch,
  target views under ``no_grad``) are what the algorithm really does. Each recorded pass is then
  costed on the real backbone at its real batch size: on the ``meta`` device where the model
  allows it, else on the CPU at batch 1 times the batch size (BERT's attention mask reads a
  value; FLOPs of these per-sample models are linear in the batch). Counts are cached by
  (backbone, input shape, batch), so a 1,596-job grid plans in well under a minute.
  Counted: matrix products, convolutions and attention (what the counter knows); not counted:
  element-wise work, the optimiser and the EMA (they are inside the measured calibration).
  LayerDrop (HuBERT, wav2vec 2.0: p = 0.1) is switched off while counting, so their counts
  are an upper bound (the expected cost is up to 10 % lower for the transformer layers).
* **Evaluation**: a forward pass of the validation and test sets every ``eval_every``
  iterations and at the end, at ``eval_batch_size`` (sizes from the prepared ``meta.json`` when
  it exists, else the task's documented sizes, else an assumption that the output names).
* **Time** = FLOPs / achieved FLOP/s, from the calibration table (``data/calibration.csv``,
  written by ``benchmarks/speed.py --write-calibration``) for (device, backbone family, amp,
  compile). A device without a row for that family uses another family's row on the same
  device (said in the output); a device without any row is **uncalibrated**: peak FLOP/s of its
  datasheet x a stated efficiency (:data:`FALLBACK_EFFICIENCY`), marked as such.
* **Trust**: each job's rate has a *basis* (:data:`BASES`: its backbone's own row, its family's,
  another family's, a datasheet) that the output names per task, with how far it may be off;
  the output also says what the times assume (the calibration rows' machine and threads, the
  machine planned on, the config's threads per job) and what they leave out (job start-up).
  Finished runs of the config (``measured``) are set next to the plan.

The package, by responsibility: ``models`` (the backbones counted, their families), ``shapes``
(inputs, text lengths, set sizes), ``counting`` (FLOPs of passes, the passes of a step),
``calibration`` (achieved FLOP/s, bases), ``job`` (the plan of a grid), ``measured`` (finished
runs), ``format`` (its text, CSV, JSON).
"""

from __future__ import annotations

from semibench.plan.calibration import (  # noqa: F401
    AMPS,
    BASES,
    CALIBRATION_COLUMNS,
    CALIBRATION_KEY,
    COMPILES,
    DEFAULT_CALIBRATION,
    DEVICE_PEAKS,
    FALLBACK_EFFICIENCY,
    Rate,
    check_device,
    cpu_model,
    lookup_rate,
    read_calibration,
)
from semibench.plan.counting import (  # noqa: F401
    COUNT_BATCH,
    PROBE_LB,
    PROBE_STEPS,
    PROBE_ULB,
    PassRecord,
    StepShape,
    _flops,
    per_sample_flops,
    step_shape,
)
from semibench.plan.errors import PlanError  # noqa: F401
from semibench.plan.format import USB_FIXMATCH_V100_DAYS, as_dict, format_plan, jobs_csv  # noqa: F401
from semibench.plan.job import JobPlan, Plan, make_plan, plan_job  # noqa: F401
from semibench.plan.models import backbone_family, build_backbone  # noqa: F401
from semibench.plan.shapes import (  # noqa: F401
    IMAGE_CHANNELS,
    IMAGE_SIDES,
    PREPARED_VAL_SIZES,
    TEST_SIZES,
    eval_sizes,
    evaluated_text_length,
    sample_shape,
    trimmed_text_length,
)

__all__ = [
    "AMPS",
    "BASES",
    "CALIBRATION_COLUMNS",
    "CALIBRATION_KEY",
    "COMPILES",
    "COUNT_BATCH",
    "DEFAULT_CALIBRATION",
    "DEVICE_PEAKS",
    "FALLBACK_EFFICIENCY",
    "IMAGE_CHANNELS",
    "IMAGE_SIDES",
    "JobPlan",
    "PREPARED_VAL_SIZES",
    "PROBE_LB",
    "PROBE_STEPS",
    "PROBE_ULB",
    "PassRecord",
    "Plan",
    "PlanError",
    "Rate",
    "StepShape",
    "TEST_SIZES",
    "USB_FIXMATCH_V100_DAYS",
    "as_dict",
    "backbone_family",
    "build_backbone",
    "check_device",
    "cpu_model",
    "eval_sizes",
    "evaluated_text_length",
    "format_plan",
    "jobs_csv",
    "lookup_rate",
    "make_plan",
    "per_sample_flops",
    "plan_job",
    "read_calibration",
    "sample_shape",
    "step_shape",
    "trimmed_text_length",
]
