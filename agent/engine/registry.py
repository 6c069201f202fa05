"""Name -> Integration, built once per config version and swapped as a whole."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from agent.engine.integration import Integration
from agent.errors import ConfigError, ConfigProblem, UnknownIntegration
from agent.events import EventHub

if TYPE_CHECKING:
    from agent.redis import RedisRuntime

__all__ = ["Registry"]


class Registry:
    """The integrations of one config version."""

    def __init__(self, integrations: Mapping[str, Integration]) -> None:
        self._by_name = dict(integrations)
        self._names = ", ".join(sorted(self._by_name)) or "none configured"
        # [integration, *its fallbacks], resolved once (config checks guarantee the names exist).
        self._chains = {
            name: (integration, *(self._by_name[f] for f in integration.fallback))
            for name, integration in self._by_name.items()
        }

    def chain(self, integration: Integration) -> tuple[Integration, ...]:
        """The integration followed by its fallbacks, in order."""
        return self._chains[integration.name]

    @classmethod
    def from_config(
        cls,
        integrations: Mapping[str, Any],
        hub: EventHub,
        *,
        redis: RedisRuntime | None = None,
        local_share: float = 1.0,
    ) -> Registry:
        """Build every integration; report every one that cannot be built, all at once.

        ``redis`` (the app's ``RedisRuntime``, when ``config.redis`` is set) backs ``scope:
        global`` limits and fleet-wide token refreshes.
        """
        built: dict[str, Integration] = {}
        problems: list[ConfigProblem] = []
        for name, cfg in integrations.items():
            try:
                built[name] = Integration.from_config(
                    name, cfg, hub, redis=redis, local_share=local_share
                )
            except ConfigError as exc:
                problems.extend(exc.problems)
        if problems:
            # The clients built so far hold no connection yet: dropping them releases nothing.
            raise ConfigError(problems)
        return cls(built)

    def get(self, name: str) -> Integration:
        """The integration called ``name``, or UnknownIntegration naming the ones that exist."""
        integration = self._by_name.get(name)
        if integration is None:
            raise UnknownIntegration(
                f"no integration named {name[:100]!r} is configured "
                f"(configured: {self._names}); check the name or add it to the config"
            )
        return integration

    def __iter__(self) -> Iterator[Integration]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    async def aclose(self) -> None:
        for integration in self._by_name.values():
            await integration.aclose()
