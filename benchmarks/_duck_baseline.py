"""The hand-written baseline of ``benchmarks/analytics.py``: the same metrics as membermkt's
analytics bundle, written the way a notebook user would write them straight in DuckDB.

It starts from the same DuckDB copy of the store (``DuckDBAnalytics.from_store``), extracts
the JSON properties it needs into typed columns once, then runs one query per metric and
fetches the rows to Python (as membermkt does). Times include that extraction.

The numbers are checked against membermkt's results where the definitions coincide exactly
(activity counts, attribution totals, funnel counts, RFM buyers and grid, cohort sizes), so
the baseline is not faster because it computes less.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

US_DAY = 86_400_000_000


def baseline(con: Any, members: str, events: str, as_of_us: int) -> dict[str, Any]:
    """Run every metric; returns ``{name: (seconds, result)}`` plus ``"total"``."""
    out: dict[str, Any] = {}

    def timed(name: str, fn: Callable[[], Any]) -> None:
        t0 = time.perf_counter()
        result = fn()
        out[name] = (time.perf_counter() - t0, result)

    def q(sql: str) -> list[Any]:
        return con.execute(sql).fetchall()

    def extract() -> None:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE ev AS SELECT member_id AS mid, type, "at" AS ts,
            CASE WHEN json_type(props, '$.amount_fen') IN ('BIGINT','UBIGINT')
                 THEN CAST(json_extract_string(props, '$.amount_fen') AS BIGINT) END AS amount,
            json_extract_string(props, '$.key') AS key,
            json_extract_string(props, '$.url') AS url,
            CAST(json_extract_string(props, '$.dwell_seconds') AS DOUBLE) AS dwell,
            json_extract_string(props, '$.staff') AS staff,
            json_extract_string(props, '$.direction') AS dir,
            json_extract_string(props, '$.channel') AS channel
            FROM {events} WHERE "at" <= {as_of_us}"""
        )

    timed("extract properties", extract)
    now = as_of_us
    timed(
        "activity classes",
        lambda: q(
            f"""SELECT coalesce(nullif(source, ''), '(unknown)') AS g,
            CASE WHEN subscribed = false OR last_active_at IS NULL THEN 3
                 WHEN last_active_at >= {now - 30 * US_DAY} THEN 0
                 WHEN last_active_at >= {now - 90 * US_DAY} THEN 1
                 WHEN last_active_at >= {now - 180 * US_DAY} THEN 2 ELSE 3 END AS cls,
            count(*) FROM {members} GROUP BY ALL"""
        ),
    )
    timed(
        "rfm",
        lambda: q(
            """WITH per AS (SELECT mid, max(ts) AS last, count(*) AS n,
                 sum(coalesce(amount, 0)) AS tot FROM ev WHERE type = 'purchase' GROUP BY mid)
            SELECT mid, last, n, tot,
              1 + (5 * (row_number() OVER (ORDER BY last, n, tot, mid) - 1)) // count(*) OVER (),
              1 + (5 * (row_number() OVER (ORDER BY n, tot, last, mid) - 1)) // count(*) OVER (),
              1 + (5 * (row_number() OVER (ORDER BY tot, n, last, mid) - 1)) // count(*) OVER ()
            FROM per ORDER BY mid"""
        ),
    )
    steps = [("scan", None), ("follow", 1), ("redpacket_claim", 7), ("purchase", 30)]
    steps.append(("purchase", 90))
    ctes = ["s0 AS (SELECT mid, min(ts) AS t FROM ev WHERE type = 'scan' GROUP BY mid)"]
    for k, (etype, days) in enumerate(steps[1:], start=1):
        strict = ">" if steps[k - 1][0] == etype else ">="
        ctes.append(
            f"s{k} AS (SELECT e.mid, min(e.ts) AS t FROM ev e JOIN s{k - 1} p ON e.mid = p.mid "
            f"WHERE e.type = '{etype}' AND e.ts {strict} p.t AND e.ts <= p.t + {days * US_DAY} "
            "GROUP BY e.mid)"
        )
    reached = " + ".join(["1"] + [f"(s{k}.mid IS NOT NULL)::INT" for k in range(1, len(steps))])
    joins = " ".join(f"LEFT JOIN s{k} ON s{k}.mid = s0.mid" for k in range(1, len(steps)))
    timed(
        "funnel (5 steps)",
        lambda: q(
            f"""WITH {", ".join(ctes)} SELECT coalesce(nullif(m.source, ''), '(unknown)'),
            {reached} AS k, count(*) FROM s0 {joins} LEFT JOIN {members} m ON m.id = s0.mid
            GROUP BY ALL"""
        ),
    )
    timed(
        "attribution",
        lambda: q(
            f"""WITH per AS (SELECT mid, max((type = 'follow')::INT) AS followed,
                 sum((type = 'purchase')::INT) AS orders,
                 sum(CASE WHEN type = 'purchase' THEN coalesce(amount, 0) ELSE 0 END) AS revenue
               FROM ev WHERE type IN ('follow', 'purchase') GROUP BY mid)
            SELECT coalesce(nullif(m.source, ''), '(unknown)') AS src, count(*),
              sum(coalesce(followed, 0)), sum((coalesce(orders, 0) > 0)::INT),
              sum(coalesce(orders, 0)), sum(coalesce(revenue, 0))
            FROM {members} m LEFT JOIN per ON per.mid = m.id GROUP BY ALL"""
        ),
    )
    week, monday = 7 * US_DAY, 4 * US_DAY
    inter = "('follow','scan','menu_click','view','message','purchase','redpacket_claim'," + (
        "'contact_added')"
    )
    timed(
        "cohorts (week)",
        lambda: q(
            f"""WITH f AS (SELECT mid, min(ts) AS first FROM ev WHERE type = 'follow'
                 GROUP BY mid),
            act AS (SELECT DISTINCT f.mid, (f.first - {monday}) // {week} AS c,
                 (e.ts - {monday}) // {week} AS p FROM ev e JOIN f ON e.mid = f.mid
                 WHERE e.type IN {inter})
            SELECT c, p - c AS off, count(*) FROM act WHERE p - c BETWEEN 0 AND 11
            GROUP BY ALL"""
        ),
    )
    timed(
        "paths",
        lambda: (
            q(
                """WITH v AS (SELECT mid, ts, CASE WHEN type = 'menu_click' AND key <> ''
                   THEN 'menu:' || key WHEN type = 'view' AND url <> '' THEN 'page:' || url
                   END AS node, dwell FROM ev WHERE type IN ('menu_click', 'view')),
            l AS (SELECT node, ts, lag(node) OVER w AS n1, lag(ts) OVER w AS t1,
                   lag(node, 2) OVER w AS n2, lag(ts, 2) OVER w AS t2
                 FROM v WHERE node IS NOT NULL WINDOW w AS (PARTITION BY mid ORDER BY ts, node))
            SELECT CASE WHEN ts - t1 <= 1800000000 AND t1 - t2 <= 1800000000 THEN n2 END,
                   CASE WHEN ts - t1 <= 1800000000 THEN n1 END AS p1, node, count(*)
            FROM l WHERE ts - t1 <= 1800000000 GROUP BY ALL"""
            )
            + q(
                """SELECT CASE WHEN type = 'menu_click' THEN 'menu:' || key ELSE 'page:' || url END,
                 dwell, count(*) FROM ev WHERE type IN ('menu_click', 'view')
                 AND dwell >= 0 GROUP BY ALL"""
            )
        ),
    )
    timed(
        "staff",
        lambda: q(
            """WITH m AS (SELECT staff, mid, ts, dir, lag(dir) OVER w AS prev_dir,
                   lag(ts) OVER w AS prev_at FROM ev
                 WHERE type = 'message' AND channel = 'wecom' AND staff <> ''
                   AND dir IN ('in', 'out')
                 WINDOW w AS (PARTITION BY staff, mid ORDER BY ts, dir))
            SELECT staff, count(*) FILTER (WHERE dir = 'in'),
                   avg(ts - prev_at) FILTER (WHERE dir = 'out' AND prev_dir = 'in'),
                   count(DISTINCT ts // 86400000000)
            FROM m GROUP BY staff"""
        ),
    )
    out["total"] = sum(v[0] for v in out.values())
    return out
