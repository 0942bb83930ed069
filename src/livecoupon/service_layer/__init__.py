"""The application layer: the use cases the API and the CLI call, and what follows a decision.

- :mod:`.service` — apply a batch of events, operator commands, restarts from snapshots and
  the log, explain; one writer thread over the engine and the store.
- :mod:`.checkout` — quotes, orders, payments, refunds.
- :mod:`.handlers` — what follows a committed decision: counters, popups, console lines,
  merchant webhooks.
"""
