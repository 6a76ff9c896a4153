"""Where telemetry is kept in CodeQual's own database: log entries, error issues and events,
spans, critical events and tracked units of work. Each module is the one place that reads and
writes its tables (declared in :mod:`codequal.storage.schema`)."""
