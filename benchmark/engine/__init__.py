"""Training and evaluation: the step loop, optimisers, checkpoints, the distributed runtime, metrics, tasks."""
