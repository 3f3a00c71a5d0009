"""Flux's API as data: the kinds fluxd serves, their schemas, and shared vocabulary.

Nothing here does I/O or imports the rest of fluxd.  ``meta`` holds kinds,
conditions and well-known keys; ``source``, ``kustomize`` and ``notification``
hold the typed objects; ``crds`` renders CustomResourceDefinitions from them
(the API server checks objects against those schemas); ``duration`` reads and
writes Go durations.
"""
