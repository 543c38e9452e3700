"""Real-server test harness: Synapse, Prosody and test clients on loopback.

Used by the pytest suite (see :mod:`tests.harness.fixtures`) and by the
``make demo`` script.
"""

from .matrix_user import MatrixError, MatrixUser
from .ports import free_port
from .prosody import Prosody
from .synapse import Synapse
from .xmpp_client import XmppClient, XmppError

__all__ = [
    "MatrixError",
    "MatrixUser",
    "Prosody",
    "Synapse",
    "XmppClient",
    "XmppError",
    "free_port",
]
