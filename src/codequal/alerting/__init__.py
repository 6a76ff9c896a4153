"""Alerting: rule model, pure evaluator, notifier channels, silences, runbook links."""
