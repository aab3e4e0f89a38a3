"""`mer-search pipeline`: the reference study end to end, as steps that are skipped when their output is whole.

    stages.py      what the study is: budgets, options, the stage table (what each searches, reads, produces)
    study.py       Pipeline: the stages resolved for this data, the steps in order, the answer chosen on dev
    steps.py       each stage's steps (sweep, report, export, final training, features) and the bundle's
    runner.py      Runner: runs steps in order; the one place a skip is decided, logged and timed
    layout.py      PipelineDir: every path under --out
    text_space.py  `--text-space auto`: which text space the hardware affords, and why
    time_budget.py --time-budget: parsing, and each sweep's share of what is left
    summary.py     the summary table, the spaces used, the answer

Everything lands under one output dir; a stopped pipeline rerun with the same command resumes: finished steps
are skipped, an interrupted sweep is resumed.
"""

from mer_search.core.config_io import parse_duration   # --time-budget, as the pipeline has always offered it
from mer_search.pipeline.stages import AUTO, BUDGETS, PipelineOptions, Stage, space_path, stages, sweep_epochs
from mer_search.pipeline.study import Pipeline, available_splits

__all__ = ["AUTO", "BUDGETS", "Pipeline", "PipelineOptions", "Stage", "available_splits", "parse_duration",
           "space_path", "stages", "sweep_epochs"]
