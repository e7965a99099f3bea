"""Measurement primitives of `asymfusion bench`: timing statistics, peak memory, FLOPs, matmul throughput, machine.

Timing: `time.perf_counter` around one call, with `torch.cuda.synchronize` before and after on CUDA. The benchmark
times its variants round-robin (see perf.py), so every summary here is over per-round samples: median, quartiles
and IQR, never a mean that one descheduled step can move.

Peak memory of a CPU step: glibc's free lists are first returned to the OS (`malloc_trim`), the kernel's RSS
high-water mark is reset (`/proc/self/clear_refs` <- 5, Linux >= 4.0), and after the step `VmHWM - VmRSS(before)`
is the step's own peak. Where that is unavailable a 1 ms psutil sampling thread is used, and failing that
`ru_maxrss` (which only ever grows, so it is coarse). CUDA uses `torch.cuda.max_memory_allocated`.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import platform
import resource
import statistics
import threading
import time
from typing import Any, Callable, Iterator

import torch

from asymfusion.benchmark.engine.runtime import cpu_model

MB = 1024 * 1024


def summarize(seconds: list[float]) -> dict[str, Any]:
    """Median, quartiles, IQR and min of timing samples, in milliseconds (plus the samples, in order)."""
    raw = [round(s * 1e3, 4) for s in seconds]
    ms = sorted(raw)
    if not ms:
        return {"n": 0}
    q1, q3 = _quartiles(ms)
    return {"median_ms": statistics.median(ms), "q1_ms": q1, "q3_ms": q3, "iqr_ms": q3 - q1, "min_ms": ms[0],
            "n": len(ms), "samples_ms": raw}


def ratio_summary(a: list[float], b: list[float]) -> dict[str, Any]:
    """a/b per round: median and quartiles of the paired ratios (load drift common to both sides cancels), and
    min(a)/min(b), the best-of-n ratio (interference only ever adds time, so it is the steadier one on a busy
    machine)."""
    values = sorted(x / y for x, y in zip(a, b))
    q1, q3 = _quartiles(values)
    return {"median": statistics.median(values), "q1": q1, "q3": q3, "best_of_n": min(a) / min(b),
            "n": len(values)}


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds one call takes (device work included)."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------------------------------------
# Memory


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _malloc_trim() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """`with PeakMemory(device) as pm: step()` -> pm.delta_mb (peak above the memory before), pm.method."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.delta_mb: float | None = None
        self.method = ""
        self._sampler: threading.Thread | None = None
        self._stop = threading.Event()
        self._peak = 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._before = torch.cuda.memory_allocated(self.device)
            self.method = "cuda max_memory_allocated minus allocated before the step"
            return self
        _malloc_trim()
        self._before = (_status_kb("VmRSS") or 0) * 1024
        if self._before and _reset_hwm():
            self.method = "RSS high-water mark (/proc/self/clear_refs=5, VmHWM) minus RSS before the step"
            return self
        try:
            import psutil

            proc = psutil.Process()
            self._before = self._peak = proc.memory_info().rss

            def sample() -> None:
                while not self._stop.is_set():
                    self._peak = max(self._peak, proc.memory_info().rss)
                    time.sleep(0.001)

            self._sampler = threading.Thread(target=sample, daemon=True)
            self._sampler.start()
            self.method = "psutil RSS sampled every 1 ms minus RSS before the step"
        except ImportError:
            self._before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self.method = "ru_maxrss growth (coarse: 0 unless the step sets a new process maximum)"
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self._sampler is not None:
            self._stop.set()
            self._sampler.join()
            peak = self._peak
        elif self.method.startswith("RSS"):
            peak = (_status_kb("VmHWM") or 0) * 1024
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.delta_mb = max(0, peak - self._before) / MB


def state_megabytes(model: torch.nn.Module, optimisers: list[torch.optim.Optimizer]) -> float:
    """Parameters, buffers and optimiser state (momentum etc.): what lives between steps."""
    tensors = [*model.parameters(), *model.buffers()]
    for opt in optimisers:
        tensors += [v for state in opt.state.values() for v in state.values() if torch.is_tensor(v)]
    seen, total = set(), 0
    for t in tensors:
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total / MB


# ---------------------------------------------------------------------------------------------------------------------
# FLOPs and throughput


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of everything `fn` runs (torch.utils.flop_counter; a multiply-add counts 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


MIN_MATMUL_SECONDS = 0.01  # shorter timed calls measure launch and sync latency, not the matmul units (CUDA)


class MatmulProbe:
    """A dense n x n @ n x n matmul, repeated `calls` times per timed call so that one call lasts at least
    MIN_MATMUL_SECONDS (one call on a CPU; dozens of 2048^2 bf16 matmuls on a large GPU, where one takes ~40 us).
    Also timed as one more 'variant' of the rounds, so that it sees the same machine load as the models it is
    compared with (the per-round FLOP/s fraction is then paired, like the other ratios)."""

    key = ("matmul", "-")

    def __init__(self, device: torch.device, n: int, dtype: torch.dtype = torch.float32) -> None:
        gen = torch.Generator(device="cpu").manual_seed(0)
        self.device, self.n, self.dtype = device, n, dtype
        self.a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
        self.b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
        self.out = torch.empty(n, n, device=device, dtype=dtype)
        self.calls = 1
        torch.mm(self.a, self.b, out=self.out)  # first call: cuBLAS / oneDNN set-up
        one = min(time_call(self.train_step, device) for _ in range(3))
        self.calls = max(1, math.ceil(MIN_MATMUL_SECONDS / max(one, 1e-7)))
        self.flops = self.calls * 2 * n ** 3
        self.train_times: list[float] = []
        self.infer_times: list[float] = []

    def train_step(self) -> None:
        for _ in range(self.calls):
            torch.mm(self.a, self.b, out=self.out)

    def infer(self) -> None:  # not part of the inference rounds' comparisons
        pass

    def train(self, mode: bool = True) -> None:
        pass


def matmul_throughput(device: torch.device, n: int, repeats: int, warmup: int,
                      dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """The probe timed alone, like the training step: GFLOP/s at the median (and best) time."""
    probe = MatmulProbe(device, n, dtype)
    for _ in range(max(1, warmup)):
        probe.train_step()
    stats = summarize([time_call(probe.train_step, device) for _ in range(max(3, repeats))])
    return {"n": n, "dtype": str(dtype).replace("torch.", ""), "calls": probe.calls, "flops": probe.flops,
            "gflops": probe.flops / (stats["median_ms"] / 1e3) / 1e9,
            "gflops_best": probe.flops / (stats["min_ms"] / 1e3) / 1e9, "time": stats}


def merge_matmul(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Matmul measured before and after the models: median over both (the reported throughput)."""
    first = runs[0]
    medians = [r["gflops"] for r in runs]
    return {**{k: first[k] for k in ("n", "dtype", "calls", "flops")}, "gflops": statistics.median(medians),
            "gflops_best": max(r["gflops_best"] for r in runs), "runs": runs}


# ---------------------------------------------------------------------------------------------------------------------
# Machine


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_average() -> list[float] | None:
    with contextlib.suppress(OSError, AttributeError):
        return [round(x, 2) for x in os.getloadavg()]
    return None


def machine_info(device: torch.device) -> dict[str, Any]:
    import timm

    info: dict[str, Any] = {
        "cpu_model": cpu_model(), "cores_logical": os.cpu_count(), "cores_available": available_cores(),
        "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
        "torch": torch.__version__, "timm": timm.__version__, "python": platform.python_version(),
        "platform": platform.platform(), "device": str(device), "mkldnn": torch.backends.mkldnn.is_available(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(device_name=props.name, cuda=torch.version.cuda, gpu_memory_gb=round(props.total_memory / 1e9, 1),
                    cudnn=torch.backends.cudnn.version())
    else:
        info["device_name"] = info["cpu_model"]
    return info


class CpuUse:
    """Process CPU seconds per wall second per thread over a region: about 1.0 on an idle machine; well below
    1.0 means other processes took this run's cores (the timings are then noisy)."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.wall = 0.0

    @contextlib.contextmanager
    def region(self) -> Iterator[None]:
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            yield
        finally:
            self.cpu += time.process_time() - cpu
            self.wall += time.perf_counter() - wall

    def utilisation(self, threads: int) -> float | None:
        return round(self.cpu / (self.wall * threads), 3) if self.wall > 0 else None
