"""The kinds of configuration object the restarter watches, and their keys.

Secrets and ConfigMaps, and (with the CSI integration on) the Secrets Store
CSI driver's SecretProviderClasses: a change of a SecretProviderClass is
seen on its SecretProviderClassPodStatus objects, but named, annotated and
recorded as the SecretProviderClass, as Reloader does.

Reloader names the kind in two places users can see: the env var suffix
(``STAKATER_<NAME>_SECRET``) and the ``type`` field of the
``last-reloaded-from`` annotation. Both spellings live here, once.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class ConfigKind(StrEnum):
    """A watched configuration kind, valued by its Kubernetes ``kind``."""

    SECRET = "Secret"
    CONFIGMAP = "ConfigMap"
    SECRET_PROVIDER_CLASS = "SecretProviderClass"

    @property
    def reloader_type(self) -> str:
        """Reloader's upper-case spelling: env var suffix and annotation ``type``."""
        return self.value.upper()

    @classmethod
    def parse(cls, text: str) -> ConfigKind | None:
        """Any spelling seen in the wild (``Secret``, ``SECRET``, ``secrets``) or None."""
        folded = text.strip().lower()
        for kind in cls:
            singular = kind.value.lower()
            if folded in (singular, singular + "s", singular + "es"):
                return kind
        return None


class ConfigKey(NamedTuple):
    """Identity of one Secret or ConfigMap."""

    namespace: str
    kind: ConfigKind
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"
