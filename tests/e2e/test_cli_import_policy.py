"""``membermkt members import --on-shared-identity``: a row listing another member's
identity is reported (default) or merges the two members; never a silent move."""

from __future__ import annotations

import json
from pathlib import Path

from membermkt.core.identity import Identity
from membermkt.core.members import Member
from membermkt.stores import SqlStore

from .conftest import membermkt


def test_import_reports_or_merges_a_shared_identity(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    phone = Identity.platform_buyer("tmall", "tb-1")  # (phones need a key: docs/security.md)
    store = SqlStore(url)
    store.upsert_members([Member("buyer", identities=[phone], tags={"tmall"})])
    store.close()
    rows = tmp_path / "crm.csv"
    cell = json.dumps([phone.token]).replace('"', '""')
    rows.write_text(f'id,city,identities\ncrm-7,Wuhan,"{cell}"\n', encoding="utf-8")

    proc = membermkt("members", "import", str(rows), "--db", url, cwd=tmp_path)
    assert proc.returncode == 1
    assert "belongs to member 'buyer'" in proc.stderr
    assert "wrote 0 members" in proc.stdout

    proc = membermkt(
        "members", "import", str(rows), "--on-shared-identity", "merge", "--db", url, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    store = SqlStore(url)
    assert store.resolve(phone) == "buyer"  # the smaller id survives
    member = store.get_member("buyer")
    assert member is not None
    assert (member.profile.city, member.tags) == ("Wuhan", {"tmall"})
    assert store.get_member("crm-7") is None
    [merge] = store.merges("buyer")
    assert (merge.drop, merge.link.by) == ("crm-7", "import")
    store.close()
