"""End-to-end encryption, knowing nothing of XMPP: the primitives
(``primitives``, the only importer of vodozemac and cryptography), the
per-user key store (``store``), the gateway's device (``device``), Megolm
in rooms (``rooms``), cross-signing, secret storage and sharing, SAS, key
backup and key requests. :mod:`matridge.encryption` ties it to a session.
"""
