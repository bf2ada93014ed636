"""The segment algebra: immutable expression trees over a member and their history.

A segment is evaluated *as of* a point in time. Leaves:

* :class:`Cmp` — an attribute comparison (``eq ne lt le gt ge in not_in between exists
  contains startswith``) on a profile field, a derived field or a custom attribute;
* :class:`Tags` — tag membership (any / all of some tags; "none of" is ``~any``);
* :class:`Did` — "did event E (with these properties) at least N / at most M times within
  the last D" — counting events in ``(as_of - within, as_of]``;
* :class:`Sample` — deterministic hash sampling (holdouts);
* :data:`TRUE` / :data:`FALSE`.

Combinators :class:`And`, :class:`Or`, :class:`Not` (built with ``&``, ``|``, ``~``).

**Missing values**: a comparison on a missing attribute is false and its negation is true.
The same holds for values of another type than the comparison's (a custom attribute holding
``"3"`` is not ``== 3``). Every backend agrees on this (property-tested).

The JSON form (``to_json``/``from_json``) is versioned and human-editable; ``from_json``
raises only :class:`~membermkt.errors.SegmentError`, naming the JSON path of the bad node.
"""

from membermkt.core.segments._age import (
    age_threshold_birthday,
    completed_years,
    expand_age,
    shift_years,
)
from membermkt.core.segments._cmp import Cmp, Field, attr
from membermkt.core.segments._cmp import _make_cmp as _make_cmp
from membermkt.core.segments._cmp import validate_cmp as validate_cmp
from membermkt.core.segments._did import Did, did
from membermkt.core.segments._fields import CMP_OPS as CMP_OPS
from membermkt.core.segments._fields import (
    FIELD_TYPES,
    FieldType,
    RelTime,
    ago,
    field_type,
)
from membermkt.core.segments._fields import ORDER_OPS as ORDER_OPS
from membermkt.core.segments._fields import STR_OPS as STR_OPS
from membermkt.core.segments._fields import Value as Value
from membermkt.core.segments._fields import _type_class as _type_class
from membermkt.core.segments._nodes import (
    FALSE,
    JSON_VERSION,
    TRUE,
    And,
    Const,
    Not,
    Or,
    Segment,
)
from membermkt.core.segments._nodes import MAX_DEPTH as MAX_DEPTH
from membermkt.core.segments._sample import BUCKETS as BUCKETS
from membermkt.core.segments._sample import HASH_PRIME as HASH_PRIME
from membermkt.core.segments._sample import Sample, member_hash, sample, sample_bucket
from membermkt.core.segments._sample import salt_coefficients as salt_coefficients
from membermkt.core.segments._tags import Tags, all_tags, any_tag, no_tags, tag
from membermkt.core.segments._walk import fields_used as fields_used
from membermkt.core.segments._walk import from_json, walk

__all__ = [
    "FALSE",
    "FIELD_TYPES",
    "JSON_VERSION",
    "TRUE",
    "And",
    "Cmp",
    "Const",
    "Did",
    "Field",
    "FieldType",
    "Not",
    "Or",
    "RelTime",
    "Sample",
    "Segment",
    "Tags",
    "age_threshold_birthday",
    "ago",
    "all_tags",
    "any_tag",
    "attr",
    "completed_years",
    "did",
    "expand_age",
    "field_type",
    "from_json",
    "member_hash",
    "no_tags",
    "sample",
    "sample_bucket",
    "shift_years",
    "tag",
    "walk",
]
