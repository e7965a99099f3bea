"""params.yaml as validated objects: the schema, `base:` inheritance, run resolution and error messages.

Importing this package imports pydantic and PyYAML, never torch: the CLI, the pipeline writer and the report
stages read the configuration without loading the training stack.
"""

from asymfusion.benchmark.config.load import load_params
from asymfusion.benchmark.config.messages import format_validation_error
from asymfusion.benchmark.config.runs import list_runs, resolve_run, runs_of
from asymfusion.benchmark.config.schema import (
    ClaimConfig,
    EvalConfig,
    ExperimentConfig,
    OptimiserConfig,
    Params,
    RunConfig,
    StageConfig,
    SuiteConfig,
    TableConfig,
    TrainConfig,
)
from asymfusion.benchmark.errors import ConfigError

__all__ = ["ClaimConfig", "ConfigError", "EvalConfig", "ExperimentConfig", "OptimiserConfig", "Params", "RunConfig",
           "StageConfig", "SuiteConfig", "TableConfig", "TrainConfig", "format_validation_error", "list_runs",
           "load_params", "resolve_run", "runs_of"]
