"""`asymfusion tune`: Optuna studies over the experiments, their storages and what a study exports."""
