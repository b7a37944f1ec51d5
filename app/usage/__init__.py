"""Usage tracking: events from the API's request log, service log files, the batch API and deployment
lifetimes (events.py parses and records them once each), and the daily roll-up of per-plan metrics."""
