"""matridge: a Matrix gateway for XMPP, built on slidge.

Importing the package registers its classes with slidge.
"""

from . import logsafety, sqlite_tuning

logsafety.install()  # before anything logs a stanza or a stored session
sqlite_tuning.install()  # before slidge opens its database

from . import commands, config  # noqa: E402, F401  (registers commands and options)
from .contact import Contact, Roster  # noqa: E402
from .gateway import Gateway  # noqa: E402
from .group import MUC, Bookmarks, Participant  # noqa: E402
from .session import Session  # noqa: E402

__version__ = "0.2.0"

__all__ = [
    "MUC",
    "Bookmarks",
    "Contact",
    "Gateway",
    "Participant",
    "Roster",
    "Session",
]
