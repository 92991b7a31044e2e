"""Mailbox-sync logic: pure functions over snapshots. No I/O, no Home Assistant.

- `check`: the sans-I/O check planner (what to ask the server, what is new).
- `state`: the persisted per-mailbox state and its (de)serialisation.
- `message`: raw headers and bodies to event data and fetch_message answers.
- `retention`: which messages to archive, and which to delete, and when.

Delivery, as these pieces and the integration's `store.py` give it: at least once. A
check reports each new uid once, in arrival order, and `apply` records it as known;
no message is skipped, also when a check stops early (`deferred`, `partial_outcome`)
or the server blinks empty (tombstones). What is announced is journalled on disk
right after its events fired: a crash in the instant between the two (one small file
write) makes the next start announce that check's messages again, with the same uid.
"""
