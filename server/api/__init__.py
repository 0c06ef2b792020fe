"""presso.server.api: the OpenAI-compatible HTTP face (FastAPI) over the AsyncEngine.

HTTP JSON -> pydantic request (protocol.py) -> engine requests (generation.py) -> deltas -> detokenized,
stop-checked choices -> JSON or SSE responses (completions.py, chat.py). Errors are OpenAI error objects.
"""
