"""Errors the restarter raises when a workload or config object cannot be read.

Exception tree::

    RestarterError                 anything the restarter refuses
    ├── UnsupportedWorkload     a kind the restarter cannot roll (LookupError)
    ├── InvalidConfigData       a Secret/binaryData value that is not base64 (ValueError)
    └── InvalidLabelSelector    a namespace/resource selector that does not parse (ValueError)

Annotation values that Reloader would choke on (a bad regular expression in a
reload list, an unparsable pause period) are *not* errors: the decision carries
them as ``problems`` so one bad annotation never blocks a workload's other
restarts. Messages name objects and keys, never Secret values.
"""

from __future__ import annotations


class RestarterError(Exception):
    """Base of every error raised by ``fluxd.restarter``."""


class UnsupportedWorkload(RestarterError, LookupError):
    """The object is not a kind whose pods the restarter knows how to roll."""

    def __init__(self, *, api_version: str, kind: str) -> None:
        self.api_version = api_version
        self.kind = kind
        super().__init__(f"cannot restart workloads of kind {kind!r} (apiVersion {api_version!r})")


class InvalidConfigData(RestarterError, ValueError):
    """A base64 value (Secret ``data``, ConfigMap ``binaryData``) does not decode."""

    def __init__(self, *, kind: str, namespace: str, name: str, key: str) -> None:
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.key = key
        super().__init__(f"{kind} {namespace}/{name}: key {key!r} is not valid base64")


class InvalidLabelSelector(RestarterError, ValueError):
    """A label selector string from the settings does not parse."""

    def __init__(self, selector: str, *, reason: str) -> None:
        self.selector = selector
        self.reason = reason
        super().__init__(f"invalid label selector {selector!r}: {reason}")
