"""Web demo and HTTP API (FastAPI); goes through speech2face.pipeline only."""
