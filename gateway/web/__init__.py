"""Web views (Starlette)."""
