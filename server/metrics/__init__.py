"""presso.server.metrics: Prometheus series (prefix `presso_`, vLLM's semantics) for the HTTP server.

Request-path counters and histograms are fed by the API (registry.py); engine gauges, process memory,
GPU memory and energy are read at scrape time by collectors (collectors.py, energy.py).
"""
