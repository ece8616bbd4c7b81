"""Alerts: channels operators subscribe with (webhook, Slack, e-mail), the messages made of
outbox events, their senders, and the dispatcher that delivers them at least once."""
