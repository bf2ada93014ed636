"""The shipped JSON Schema accepts every segment's JSON form."""

from __future__ import annotations

import jsonschema
from hypothesis import given

from membermkt.core.segjson import json_schema
from membermkt.testing import strategies as mst

VALIDATOR = jsonschema.Draft202012Validator(json_schema())


def test_schema_is_valid():
    jsonschema.Draft202012Validator.check_schema(json_schema())


@given(mst.segments())
def test_every_to_json_validates(seg):
    VALIDATOR.validate(seg.to_json())


def test_schema_rejects_unknown_op():
    assert not VALIDATOR.is_valid({"version": 1, "op": "xor", "args": []})
