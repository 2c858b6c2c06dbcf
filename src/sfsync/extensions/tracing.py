"""Tracing: one JSON log line per entrypoint call and one per result.

Built on nameko-tracer. Its ``Tracer`` dependency logs every entrypoint of
the service to the ``nameko_tracer`` logger twice: at the request (stage
``request``: service, entrypoint, call id, call id stack, context data,
arguments) and at the result (stage ``response``, plus ``response_status``
success or error, ``response_time`` in seconds, the result, and on error
``exception_type``, ``exception_value`` and the traceback). Its
``JSONFormatter`` writes each as one JSON object per line, and its
``TruncateCallArgsFilter`` and ``TruncateResponseFilter`` cut large arguments
and results to a configured length; the service configs wire those in
``LOGGING``.

What it lacks, this module adds: redaction before anything is logged. Any
key, at any depth of the arguments, context data, result or exception
arguments, whose name matches ``SECRET_KEYS`` (password, secret, token,
authorization, api key; any case) or is one of the fields the service lists,
has its value replaced by ``REDACTED``. Redaction happens where the trace is
built, so a handler configured without it cannot leak a secret; the call's
own arguments and context are never changed, only the logged copies.

Usage::

    class ContactsService:
        tracer = Tracer(redact=("birthdate", "phone"))

Not redacted: free text inside exception messages and tracebacks.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from nameko.containers import WorkerContext
from nameko_tracer import (
    Tracer as LibraryTracer,
)
from nameko_tracer import constants

__all__ = ["REDACTED", "SECRET_KEYS", "Tracer", "redact"]

log = logging.getLogger(__name__)

REDACTED = "********"
SECRET_KEYS = re.compile(
    r"pass(word|wd)?|secret|token|authori[sz]ation|api[_-]?key|credential",
    re.IGNORECASE,
)
# Parts of a trace that carry caller or service data.
_TRACE_DATA_KEYS = (
    constants.REQUEST_KEY,
    constants.CONTEXT_DATA_KEY,
    constants.RESPONSE_KEY,
    constants.EXCEPTION_ARGS_KEY,
)


def redact(value: Any, fields: frozenset[str] = frozenset()) -> tuple[Any, bool]:
    """A copy of ``value`` with secret and listed keys' values replaced by
    ``REDACTED``, and whether anything was replaced. Keys compare without case.
    """
    if isinstance(value, Mapping):
        copy: dict[Any, Any] = {}
        changed = False
        for key, item in value.items():
            if isinstance(key, str) and (
                key.lower() in fields or SECRET_KEYS.search(key)
            ):
                copy[key] = REDACTED
                changed = True
            else:
                copy[key], inner = redact(item, fields)
                changed = changed or inner
        return copy, changed
    if isinstance(value, list | tuple):
        items = [redact(item, fields) for item in value]
        return [item for item, _ in items], any(inner for _, inner in items)
    return value, False


class _RedactingAdapter(logging.LoggerAdapter):
    """Redacts the trace that the wrapped nameko-tracer adapter builds."""

    fields: frozenset[str] = frozenset()

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        msg, kwargs = super().process(msg, kwargs)
        trace = kwargs["extra"][constants.TRACE_KEY]
        for key in _TRACE_DATA_KEYS:
            if key in trace:
                trace[key], changed = redact(trace[key], self.fields)
                if changed and key == constants.REQUEST_KEY:
                    trace[constants.REQUEST_REDACTED_KEY] = True
        return msg, kwargs


class Tracer(LibraryTracer):
    """nameko-tracer's entrypoint tracing, with secrets redacted.

    Consumes: the ``TRACER`` config of nameko-tracer (``ADAPTERS``).
    Emits: two records per entrypoint call on the ``nameko_tracer`` logger,
    the trace in the record's ``nameko_trace`` attribute.
    Raises: nothing; a trace that cannot be built is logged as a warning by
    nameko-tracer and the call goes on.

    ``redact`` lists further keys (any depth, any case) to redact for this
    service, on top of ``SECRET_KEYS``.
    """

    def __init__(self, redact: Iterable[str] = ()) -> None:
        super().__init__()
        self.redact_fields = frozenset(name.lower() for name in redact)
        self._adapter_classes: dict[type, type] = {}

    def adapter_factory(self, worker_ctx: WorkerContext) -> logging.LoggerAdapter:
        base = self.adapter_types[type(worker_ctx.entrypoint)]
        adapter_class = self._adapter_classes.get(base)
        if adapter_class is None:
            adapter_class = type(
                f"Redacting{base.__name__}",
                (_RedactingAdapter, base),
                {"fields": self.redact_fields},
            )
            self._adapter_classes[base] = adapter_class
        adapter = super().adapter_factory(worker_ctx)
        return adapter_class(adapter.logger, extra=adapter.extra)
