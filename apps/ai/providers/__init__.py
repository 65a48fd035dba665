"""AI providers behind one interface (`base.Provider`): OpenAI, Anthropic, Google and the offline models."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from apps.ai.providers.base import Provider, ProviderConfig

_CLIENTS_MAX = 64
_lock = threading.Lock()
_clients: OrderedDict[tuple[str, str, str, float], Provider] = OrderedDict()


def _build(name: str, config: ProviderConfig) -> Provider:
    # Imported lazily: a tenant that never configures a vendor never loads its SDK.
    if name == "openai":
        from apps.ai.providers.openai_api import OpenAIProvider

        return OpenAIProvider(config)
    if name == "anthropic":
        from apps.ai.providers.anthropic_api import AnthropicProvider

        return AnthropicProvider(config)
    if name == "google":
        from apps.ai.providers.google_api import GoogleProvider

        return GoogleProvider(config)
    raise ValueError(f"unknown AI provider {name!r}")


def provider_get(name: str, config: ProviderConfig) -> Provider:
    """A provider client for these credentials, reused across calls (SDK clients keep connection pools)."""
    # Keyed by a hash of the key, never the key: one tenant's client is never handed another's key.
    key = (name, hashlib.sha256(config.api_key.encode()).hexdigest(), config.base_url, config.timeout)
    with _lock:
        client = _clients.get(key)
        if client is not None:
            _clients.move_to_end(key)
            return client
    client = _build(name, config)
    with _lock:
        _clients[key] = client
        while len(_clients) > _CLIENTS_MAX:
            _clients.popitem(last=False)
    return client
