"""Lists matridge's options in ``--help``.

slidge answers ``--help`` with its main parser before it imports the legacy
module, so plugin options would never show. When help is asked for, this
adds them to that parser as their own group. It only runs for help: in a
real start the plugin parser must be the one that reads these options.
"""

from __future__ import annotations

from typing import Any

HELP_FLAGS = ("-h", "--help")


def install() -> None:
    import slidge.main
    from slidge.util.conf import ConfigModule

    from . import config

    class PluginOptions(ConfigModule):
        # slidge's main() appends "_MATRIDGE_" to "SLIDGE_" for plugin options.
        ENV_VAR_PREFIX = "SLIDGE__MATRIDGE_"

    original = slidge.main.get_configurator
    if getattr(original, "matridge_help", False):
        return  # already installed (site may read .pth files twice)

    def get_configurator(from_entrypoint: bool = False) -> Any:
        configurator = original(from_entrypoint)
        group = configurator.parser.add_argument_group("matridge options")
        PluginOptions(config, group)  # adds the options to the group
        return configurator

    get_configurator.matridge_help = True  # type: ignore[attr-defined]
    slidge.main.get_configurator = get_configurator
