"""watcher: a what-to-watch signal monitor.

Polls news feeds, stores what it sees, matches items against a YAML watch list and sends one alert per
story through apprise, exactly once per channel.
"""

__version__ = "0.1.0"
