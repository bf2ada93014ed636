"""The segment algebra (public facade of :mod:`membermkt.core.segments`).

>>> from datetime import timedelta
>>> from membermkt.segments import attr, tag, did
>>> vip_buyers = (attr("gender") == "female") & (tag("vip") | did(
...     "purchase", at_least=3, within=timedelta(days=90)))
"""

from membermkt.core.evaluate import compile_predicate
from membermkt.core.segments import (
    FALSE,
    TRUE,
    And,
    Cmp,
    Const,
    Did,
    Field,
    Not,
    Or,
    RelTime,
    Sample,
    Segment,
    Tags,
    ago,
    all_tags,
    any_tag,
    attr,
    did,
    from_json,
    no_tags,
    sample,
    tag,
)
from membermkt.core.simplify import simplify
from membermkt.core.table import MemberTable, compile_table

__all__ = [
    "FALSE",
    "TRUE",
    "And",
    "Cmp",
    "Const",
    "Did",
    "Field",
    "MemberTable",
    "Not",
    "Or",
    "RelTime",
    "Sample",
    "Segment",
    "Tags",
    "ago",
    "all_tags",
    "any_tag",
    "attr",
    "compile_predicate",
    "compile_table",
    "did",
    "from_json",
    "no_tags",
    "sample",
    "simplify",
    "tag",
]
