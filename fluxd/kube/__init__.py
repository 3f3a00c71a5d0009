"""The only package that talks to the Kubernetes API (through kubernetes_asyncio)."""
