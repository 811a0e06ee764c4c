"""
The log reference (``docs/logs.rst``) names every Eliot action and message
type the driver writes, with their fields: what operators filter on is
never left for them to find in the source.
"""

from __future__ import absolute_import, division, print_function, unicode_literals

import io
import os

import pytest
from eliot import ActionType, MessageType

from vsphere_flocker_driver import _logging

LOGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    "docs", "logs.rst")

#: Eliot's own fields, which the reference does not repeat.
ELIOT_FIELDS = frozenset(["message_type", "action_type", "action_status"])


def documented_rows():
    """``{type: the text of its row}`` of the reference's tables."""
    with io.open(LOGS, encoding="utf-8") as reference:
        lines = reference.read().splitlines()
    rows = {}
    current = None
    for line in lines:
        if line.startswith("   * - ``"):
            current = line.split("``")[1]
            rows[current] = ""
        elif current is not None and line.startswith("     "):
            rows[current] += line
        else:
            current = None
    return rows


def logged_types():
    """``(type name, its fields)`` of every action and message type."""
    for name in sorted(dir(_logging)):
        kind = getattr(_logging, name)
        if isinstance(kind, MessageType):
            yield kind.message_type, set(kind._serializer.fields)
        elif isinstance(kind, ActionType):
            # Those of its start and success (a failure's are Eliot's).
            serializers = kind._serializers
            yield kind.action_type, (set(serializers.start.fields) |
                                     set(serializers.success.fields))


@pytest.mark.parametrize("name,fields", list(logged_types()))
def test_every_log_type_is_documented_with_its_fields(name, fields):
    rows = documented_rows()
    assert name in rows, "docs/logs.rst does not name " + name
    for field in sorted(fields - ELIOT_FIELDS):
        assert "``{}``".format(field) in rows[name], (name, field)
