"""Route handlers of the REST API, grouped by concern."""
