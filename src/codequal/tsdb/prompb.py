"""Prometheus remote write 1.0 messages (``prometheus.WriteRequest``, prometheus/prompb), built
at import time from a descriptor, as :mod:`codequal.ingest.logproto` builds Loki's: a handful of
small messages do not justify generated code in the build.

Only what remote write 1.0 carries is declared: float samples, labels, and (to be recognised
and skipped, not stored) exemplars and native histograms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
Field = tuple[str, int, int, int, str]  # name, number, type, label, message type or ""
Messages = Sequence[tuple[str, Sequence[Field]]]

_MESSAGES: Messages = (
    ("Label", [("name", 1, _F.TYPE_STRING, _OPTIONAL, ""),
               ("value", 2, _F.TYPE_STRING, _OPTIONAL, "")]),
    ("Sample", [("value", 1, _F.TYPE_DOUBLE, _OPTIONAL, ""),
                ("timestamp", 2, _F.TYPE_INT64, _OPTIONAL, "")]),
    ("Exemplar", [("labels", 1, _F.TYPE_MESSAGE, _REPEATED, ".prometheus.Label"),
                  ("value", 2, _F.TYPE_DOUBLE, _OPTIONAL, ""),
                  ("timestamp", 3, _F.TYPE_INT64, _OPTIONAL, "")]),
    # The native histogram's fields are not read: its presence is what counts.
    ("Histogram", [("timestamp", 15, _F.TYPE_INT64, _OPTIONAL, "")]),
    ("TimeSeries", [("labels", 1, _F.TYPE_MESSAGE, _REPEATED, ".prometheus.Label"),
                    ("samples", 2, _F.TYPE_MESSAGE, _REPEATED, ".prometheus.Sample"),
                    ("exemplars", 3, _F.TYPE_MESSAGE, _REPEATED, ".prometheus.Exemplar"),
                    ("histograms", 4, _F.TYPE_MESSAGE, _REPEATED, ".prometheus.Histogram")]),
    ("WriteRequest", [("timeseries", 1, _F.TYPE_MESSAGE, _REPEATED, ".prometheus.TimeSeries")]),
)  # fmt: skip


def build_messages(package: str, messages: Messages, filename: str) -> dict[str, type[Message]]:
    """Message classes for ``messages`` (proto3), in a descriptor pool of their own so another
    library declaring the same package cannot clash with them."""
    proto = descriptor_pb2.FileDescriptorProto(name=filename, package=package, syntax="proto3")
    for name, fields in messages:
        message = proto.message_type.add(name=name)
        for field, number, kind, label, type_name in fields:
            added = message.field.add(name=field, number=number, type=kind, label=label)
            if type_name:  # setting it at all, even to "", marks a scalar as a message field
                added.type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))
        for name, _ in messages
    }


_CLASSES = build_messages("prometheus", _MESSAGES, "codequal/tsdb/prompb.proto")
# Any: the fields of a message class made at run time are not known to the type checker.
WriteRequest: Any = _CLASSES["WriteRequest"]
TimeSeries: Any = _CLASSES["TimeSeries"]

# The headers remote write 1.0 requires on every request.
CONTENT_TYPE = "application/x-protobuf"
CONTENT_ENCODING = "snappy"
VERSION_HEADER = "X-Prometheus-Remote-Write-Version"
VERSION = "0.1.0"
