"""``matridge`` / ``python -m matridge``: slidge with this legacy module."""

import sys

from slidge import entrypoint

from .help_options import HELP_FLAGS, install


def main() -> None:
    if any(a in HELP_FLAGS for a in sys.argv[1:]):
        install()
    entrypoint("matridge")


if __name__ == "__main__":
    main()
