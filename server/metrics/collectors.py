"""Scrape-time collector of engine state: requests running/waiting, KV cache blocks and bytes,
prefix-cache counters, preemptions, the model's size (weight bytes, bits per weight) and which code
runs it (`presso_model_info{model_impl="native"|"generic"}`).

Values come from `engine.stats()` (an EngineStats snapshot) at each scrape, so gauges are never stale.
"""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class EngineCollector(Collector):
    def __init__(self, engine, model_name: str):
        self.engine = engine
        self.model_name = model_name

    def _gauge(self, name: str, doc: str, value: float) -> GaugeMetricFamily:
        g = GaugeMetricFamily(name, doc, labels=["model_name"])
        g.add_metric([self.model_name], float(value))
        return g

    def _counter(self, name: str, doc: str, value: float) -> CounterMetricFamily:
        c = CounterMetricFamily(name, doc, labels=["model_name"])
        c.add_metric([self.model_name], float(value))
        return c

    def collect(self):
        s = self.engine.stats()
        total = max(int(s.num_blocks_total), 1)
        yield self._gauge("presso_num_requests_running", "Requests in the running batch", s.num_running)
        yield self._gauge("presso_num_requests_waiting", "Requests waiting to be scheduled", s.num_waiting)
        yield self._gauge("presso_kv_cache_usage_perc", "Fraction of KV blocks in use (0-1)",
                          1.0 - s.num_blocks_free / total)
        yield self._gauge("presso_kv_cache_blocks_total", "KV cache blocks", s.num_blocks_total)
        yield self._gauge("presso_kv_cache_blocks_free", "Free KV cache blocks", s.num_blocks_free)
        yield self._gauge("presso_kv_cache_bytes_per_token", "KV cache bytes per token (all layers)",
                          s.kv_bytes_per_token)
        info = GaugeMetricFamily("presso_cache_config_info", "KV cache configuration",
                                 labels=["model_name", "kv_cache_dtype", "block_size"])
        info.add_metric([self.model_name, str(s.kv_cache_dtype), str(s.block_size)], 1.0)
        yield info
        yield self._counter("presso_prefix_cache_queries", "Prompt tokens looked up in the prefix cache",
                            s.prefix_cache_queries)
        yield self._counter("presso_prefix_cache_hits", "Prompt tokens found in the prefix cache",
                            s.prefix_cache_hits)
        yield self._counter("presso_num_preemptions", "Requests preempted (recompute)", s.num_preemptions)
        yield self._gauge("presso_model_weight_bytes", "Bytes of the served weights", s.weight_bytes)
        yield self._gauge("presso_model_bits_per_weight", "Average bits per weight", s.bits_per_weight)
        yield self._gauge("presso_model_parameters", "Logical parameters of the model", s.num_parameters)
        model = GaugeMetricFamily("presso_model_info", "Model served: its model_type and which code runs it "
                                  "(native: presso's layers; generic: transformers' modeling code, slower)",
                                  labels=["model_name", "model_type", "model_impl"])
        model.add_metric([self.model_name, s.model_type, s.model_impl], 1.0)
        yield model
