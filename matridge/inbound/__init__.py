"""Matrix to XMPP: what arrives in a sync batch, shown to the XMPP user.

- :mod:`.batch` routes a batch room by room and event by event, so that one
  failure costs one event; transient failures are retried in order.
"""
