"""Loki's push protobuf (``logproto.PushRequest``, grafana/loki pkg/push/push.proto), built at
import time from a descriptor rather than generated code: four small messages do not justify a
code generator in the build.

Only the fields a client sends are declared. ``Timestamp`` is wire-compatible with
``google.protobuf.Timestamp`` (seconds = 1, nanos = 2), so no well-known-type import is needed.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2

from codequal.tsdb.prompb import Messages, build_messages

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED

# (message, [(field, number, type, label, message type or "")])
_MESSAGES: Messages = (
    ("Timestamp", [("seconds", 1, _F.TYPE_INT64, _OPTIONAL, ""),
                   ("nanos", 2, _F.TYPE_INT32, _OPTIONAL, "")]),
    ("LabelPairAdapter", [("name", 1, _F.TYPE_STRING, _OPTIONAL, ""),
                          ("value", 2, _F.TYPE_STRING, _OPTIONAL, "")]),
    ("EntryAdapter", [("timestamp", 1, _F.TYPE_MESSAGE, _OPTIONAL, ".logproto.Timestamp"),
                      ("line", 2, _F.TYPE_STRING, _OPTIONAL, ""),
                      ("structuredMetadata", 3, _F.TYPE_MESSAGE, _REPEATED,
                       ".logproto.LabelPairAdapter")]),
    ("StreamAdapter", [("labels", 1, _F.TYPE_STRING, _OPTIONAL, ""),
                       ("entries", 2, _F.TYPE_MESSAGE, _REPEATED, ".logproto.EntryAdapter"),
                       ("hash", 3, _F.TYPE_UINT64, _OPTIONAL, "")]),
    ("PushRequest", [("streams", 1, _F.TYPE_MESSAGE, _REPEATED, ".logproto.StreamAdapter"),
                     ("format", 2, _F.TYPE_STRING, _OPTIONAL, "")]),
)  # fmt: skip


_CLASSES = build_messages("logproto", _MESSAGES, "codequal/ingest/logproto.proto")
# Any: the fields of a message class made at run time are not known to the type checker.
PushRequest: Any = _CLASSES["PushRequest"]
EntryAdapter: Any = _CLASSES["EntryAdapter"]
StreamAdapter: Any = _CLASSES["StreamAdapter"]
