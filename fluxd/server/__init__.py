"""The HTTP side: receivers on the public port; metrics, probes, artifacts on the internal one."""
