"""The public surface: contract names import from their documented paths."""

from __future__ import annotations

import importlib

import membermkt

CONTRACT = {
    "membermkt": ["Profile", "Member", "Event", "Identity", "Segment", "Tag", "TagRule"],
    "membermkt.errors": [
        "MembermktError",
        "SegmentError",
        "SignatureError",
        "DecryptError",
        "PlatformError",
        "QuotaExceeded",
        "BudgetExceeded",
        "StoreError",
    ],
    "membermkt.segments": [
        "attr",
        "tag",
        "any_tag",
        "all_tags",
        "did",
        "sample",
        "TRUE",
        "FALSE",
        "Segment",
        "compile_predicate",
    ],
    "membermkt.stores": ["InMemoryStore", "SqlStore"],
    "membermkt.channels.wechat": ["MessageCrypto", "parse_message"],
}


def test_all_is_sorted_and_complete():
    public = sorted(
        n
        for n in dir(membermkt)
        if not n.startswith("_")
        and n
        not in {
            "core",
            "errors",
            "segments",
            "testing",
            "stores",
            "channels",
            "payouts",
            "engine",
            "wire",
            "tokens",
            "contrib",
            "analytics",
            "report",
            "cli",
        }
        and not isinstance(getattr(membermkt, n), type(membermkt))
    )
    assert sorted(membermkt.__all__) == sorted([*public, "__version__"])


def test_contract_names_import_from_documented_paths():
    for module, names in CONTRACT.items():
        mod = importlib.import_module(module)
        for name in names:
            assert hasattr(mod, name), f"{module}.{name}"


def test_reexported_objects_report_the_public_module():
    assert membermkt.Member.__module__ == "membermkt"
    assert repr(membermkt.Member("x")).startswith("Member(")


def test_error_tree():
    from membermkt import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.MembermktError)
    assert issubclass(errors.SegmentError, ValueError)
    e = errors.PlatformError(40001, "invalid credential", "message/mass/send")
    assert (e.errcode, e.errmsg, e.api) == (40001, "invalid credential", "message/mass/send")
