"""The web app Label Studio calls: routes, request checks and auth, the per-project cache, the ASGI front."""
