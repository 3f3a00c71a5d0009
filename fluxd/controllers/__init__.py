"""One reconciler per kind, and the manager that wires them to the cluster."""
