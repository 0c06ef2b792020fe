"""loadtest: an HTTP-only load generator for any OpenAI-compatible server (presso, vLLM, llama.cpp).

Data flow: cli (argparse) -> RunConfig -> workload (prompts + output lengths) -> runner (fixed
concurrency or Poisson arrivals, bounded by requests and time) -> client (httpx SSE stream per request)
-> RequestRecord list -> report (JSON summary) -> plots (PNG) and compare (two reports side by side).
It speaks HTTP only: it never imports presso, torch or transformers.
"""
