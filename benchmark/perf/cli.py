"""The `bench` verb's command line, built without importing torch (`asymfusion --help` stays fast); `cmd_bench`
loads the benchmark (benchmark/perf/bench.py) only when it runs.

`asymfusion bench` measures parameters, GFLOPs, training-step time, inference latency, peak memory and the
data-loading share of every method x backbone x input size x batch of a suite, stacked vs per-modality-loop
execution of the shared encoder on the same weights, and this machine's dense matmul throughput. It writes
`results/<suite>/perf.json` and `results/<suite>/tables/perf.{md,csv}` (docs/performance.md).

    asymfusion bench --suite quick
    asymfusion bench --suite quick --methods asymfusion msbn --batches 2 16 --repeats 30 --threads 2
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path


def add_bench_parser(verbs: argparse._SubParsersAction) -> None:
    """The `bench` verb (wired into benchmark/cli.py)."""
    p = verbs.add_parser("bench", help="measure params, GFLOPs, step time, latency, memory and data-loading share "
                         "of a suite's models; write results/<suite>/perf.json and tables/perf.{md,csv}",
                         description=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="quick", help="a suite under `suites:` in params.yaml, e.g. quick or paper "
                   "(default: quick)")
    p.add_argument("--methods", nargs="+", metavar="NAME", default=None,
                   help="only these methods (or experiment names) of the suite (default: every method)")
    p.add_argument("--sizes", nargs="+", metavar="S|HxW", default=None,
                   help="input sizes, e.g. 64 or 480x640 (default: each experiment's training crop)")
    p.add_argument("--batches", nargs="+", type=int, metavar="N", default=None,
                   help="batch sizes per modality (default: 2 and each experiment's batch size)")
    p.add_argument("--repeats", type=int, default=None, choices=range(3, 10001), metavar="{3..10000}",
                   help="timed rounds per measurement (default: params perf.<suite>.repeats, else 15)")
    p.add_argument("--warmup", type=int, default=None, choices=range(0, 1001), metavar="{0..1000}",
                   help="untimed steps per model first (default: params perf.<suite>.warmup, else 3)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where to run (auto: cuda when available)")
    p.add_argument("--amp", default="auto", choices=["auto", "off", "bf16"],
                   help="autocast dtype (auto: bf16 on CUDA, off on CPU)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="channels_last memory format (default: on with CUDA; on CPU as the experiments' "
                   "train.channels_last)")
    p.add_argument("--compile", action="store_true", help="torch.compile every model (warm-up includes compiling)")
    p.add_argument("--threads", type=int, default=None, choices=range(1, 257), metavar="{1..256}",
                   help="torch intra-op threads (default: every core this process may use)")
    p.add_argument("--executions", nargs="+", default=None, choices=["stacked", "loop"],
                   help="shared-encoder executions to time (default: both)")
    p.add_argument("--no-data", action="store_true", help="skip the data-loading measurement (recorded as skipped)")
    p.add_argument("--out", default=None, help="output folder (default: the suite's results folder): writes "
                   "perf.json and tables/perf.{md,csv}")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_bench)




def cmd_bench(args: argparse.Namespace) -> int:
    from asymfusion.benchmark.config import load_params
    from asymfusion.benchmark.perf.bench import run_benchmark
    from asymfusion.benchmark.perf.report import write_outputs

    params = load_params(args.params)
    command = "asymfusion " + " ".join(shlex.quote(a) for a in (sys.argv[1:] or ["bench", "--suite", args.suite]))
    started = time.perf_counter()
    record = run_benchmark(
        params, args.suite, methods=args.methods, sizes=args.sizes, batches=args.batches, repeats=args.repeats,
        warmup=args.warmup, device=args.device, amp=args.amp, channels_last=args.channels_last,
        compile=args.compile, threads=args.threads, executions=args.executions, data=not args.no_data,
        command=command, log=None if args.quiet else lambda m: print(m, file=sys.stderr, flush=True))
    out = Path(args.out) if args.out else Path(params.suites[args.suite].results)
    paths = write_outputs(record, out)
    for t in record["targets"]:
        value = "-" if t["value"] is None else f"{t['value']:.3f}"
        noisy = "  [within noise]" if t.get("clear") is False else ""
        print(f"{t['status']:>12}  {t['name']}: {value} ({t['threshold']}){noisy}")
    print(f"wrote {paths['json']}, {paths['md']}, {paths['csv']} in {time.perf_counter() - started:.0f} s")
    mismatched = [r["experiment"] for r in record["rows"] if r.get("outputs_match") is False]
    if mismatched:
        print(f"error: loop and stacked outputs differ for {', '.join(mismatched)} (see perf.json)", file=sys.stderr)
        return 1
    return 0
