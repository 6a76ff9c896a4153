"""Embedded metric history and PromQL evaluation (see :mod:`codequal.tsdb.promql`)."""
