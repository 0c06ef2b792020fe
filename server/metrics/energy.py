"""Energy and GPU memory from real hardware counters only: Intel/AMD RAPL (powercap sysfs) and NVML.

Where no counter is readable (this CPU-only VM has neither) the series are absent, never zero:
`presso_energy_joules_total{source}` counts joules since server start, and
`presso_energy_joules_per_generated_token{source}` divides it by the tokens generated since then.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

_POWERCAP = Path("/sys/class/powercap")


class _Rapl:
    """Package-level RAPL zones (intel-rapl:N), microjoules with wrap-around at max_energy_range_uj."""

    def __init__(self):
        self.zones = []
        for zone in sorted(_POWERCAP.glob("intel-rapl:*")) if _POWERCAP.is_dir() else []:
            if zone.name.count(":") != 1:
                continue  # sub-zones (core, dram) are already inside the package counter
            try:
                start = int((zone / "energy_uj").read_text())
                wrap = int((zone / "max_energy_range_uj").read_text())
            except (OSError, ValueError):
                continue
            self.zones.append([zone / "energy_uj", wrap, start, 0])  # path, wrap, last, accumulated

    def joules(self) -> float:
        for z in self.zones:
            now = int(z[0].read_text())
            z[3] += now - z[2] if now >= z[2] else now + z[1] - z[2]
            z[2] = now
        return sum(z[3] for z in self.zones) / 1e6


class _Nvml:
    def __init__(self):
        import pynvml  # optional: only where NVIDIA's library and a GPU exist

        pynvml.nvmlInit()
        self.nv = pynvml
        self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        if not self.handles:
            raise RuntimeError("no NVIDIA GPU")
        self.start = [pynvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles]  # mJ

    def joules(self) -> float:
        now = [self.nv.nvmlDeviceGetTotalEnergyConsumption(h) for h in self.handles]
        return sum(n - s for n, s in zip(now, self.start, strict=True)) / 1e3

    def memory_used(self) -> list[int]:
        return [self.nv.nvmlDeviceGetMemoryInfo(h).used for h in self.handles]


class EnergyCollector(Collector):
    def __init__(self, model_name: str, generated_tokens):
        self.model_name = model_name
        self.generated_tokens = generated_tokens  # () -> float, tokens generated since start
        self.sources: dict[str, object] = {}
        rapl = _Rapl()
        if rapl.zones:
            self.sources["rapl"] = rapl
        try:
            self.sources["nvml"] = _Nvml()
        except Exception:  # no pynvml, no driver or no GPU: no NVML series at all
            pass

    def collect(self):
        if not self.sources:
            return
        total = CounterMetricFamily("presso_energy_joules", "Energy since server start from hardware counters",
                                    labels=["model_name", "source"])
        per_token = GaugeMetricFamily("presso_energy_joules_per_generated_token",
                                      "Joules since start divided by tokens generated since start",
                                      labels=["model_name", "source"])
        tokens = self.generated_tokens()
        for name, source in self.sources.items():
            joules = source.joules()
            total.add_metric([self.model_name, name], joules)
            if tokens > 0:
                per_token.add_metric([self.model_name, name], joules / tokens)
        yield total
        if tokens > 0:
            yield per_token
        nvml = self.sources.get("nvml")
        if nvml is not None:
            mem = GaugeMetricFamily("presso_gpu_memory_used_bytes", "GPU memory in use (NVML)",
                                    labels=["model_name", "gpu"])
            for i, used in enumerate(nvml.memory_used()):
                mem.add_metric([self.model_name, str(i)], used)
            yield mem
