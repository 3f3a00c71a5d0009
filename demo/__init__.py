"""The seed scenario end to end on a local control plane (``make demo``)."""
