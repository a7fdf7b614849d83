"""``python -m bridge`` and the ``bridge`` script: the CLI, with a clean line for a platform module
that cannot load (``BRIDGE_PLATFORM_MODULES``), which fails while the CLI is imported."""

import sys

from bridge.errors import EXIT_CONFIG, ConfigurationError


def run() -> int:
    try:
        from bridge.cli import main
    except ConfigurationError as exc:
        print(f"bridge: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return main()


if __name__ == "__main__":
    sys.exit(run())
