"""End-to-bridge encryption: the primitives (``primitives``, the only importer
of vodozemac and cryptography) and the per-user key store (``store``).

Not wired into the gateway yet: nothing here runs for an account today.
"""
