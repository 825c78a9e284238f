"""`zoo serve`: trained models behind HTTP, concurrent requests batched.

models.py (load, compile every bucket, name) -> batcher.py (dynamic batching off the
event loop) -> app.py (Starlette routes, JSON errors; inputs.py reads bodies, metrics.py
counts) -> server.py (Uvicorn, signals). Needs the `serve` extra (pip install 'zoo[serve]').
"""
