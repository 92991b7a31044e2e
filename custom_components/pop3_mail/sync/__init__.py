"""Mailbox-sync logic: pure functions over snapshots. No I/O, no Home Assistant.

- `check`: the sans-I/O check planner (what to ask the server, what is new).
- `state`: the persisted per-mailbox state and its (de)serialisation.
- `message`: raw headers and bodies to event data and fetch_message answers.
- `retention`: which messages to archive, and which to delete, and when.
"""
