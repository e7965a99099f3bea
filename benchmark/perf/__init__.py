"""`asymfusion bench`: time, memory and FLOPs of the experiments' models; perf.json and its tables."""
