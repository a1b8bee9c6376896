"""The live dashboard: a read-only stream consumer that renders HTML fragments (htmx + SSE)."""
