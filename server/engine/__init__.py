"""The engine: scheduler (pure Python), model runner + sampler, EngineCore, AsyncEngine, offline LLM."""
