"""dvc.yaml from params.yaml: the stages, each stage's computed code dependencies and its spec file."""
