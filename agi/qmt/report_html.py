"""`qmt report --html FILE`: the report as one self-contained page.

No script, no font, no image from anywhere: the styles are inline, the
charts inline SVG drawn here, and a Content-Security-Policy meta tag
(default-src 'none') keeps a mail client or browser from fetching
anything. Every value from the log (queue names, member names) is escaped.

Per queue a table (the JSON's figures, with a total row); per number a
chart of each day: hours logged in and paused (bars on a 24-hour scale),
calls accepted and missed (on the chart's largest count). Each bar is a
<rect class="logged|paused|accepted|missed" data-day=.. data-value=..>.
"""

from __future__ import annotations

import html
from typing import Any

from .report import Document, duration, reasons

CSP = "default-src 'none'; style-src 'unsafe-inline'"
STYLE = """
body{font:14px/1.4 sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #bbb;padding:.25em .5em;text-align:right;vertical-align:top}
th:first-child,td:first-child,td.names{text-align:left}
tr.total td{font-weight:bold;background:#f2f2f2}
.logged{fill:#4a7fb5}.paused{fill:#e0a030}.accepted{fill:#3a9a50}.missed{fill:#c8453a}
.legend span{display:inline-block;width:.9em;height:.9em;margin:0 .3em 0 1em;vertical-align:middle}
svg text{font:11px sans-serif;fill:#444}
"""
HEADINGS = ("number", "names", "sessions", "logged in", "paused", "rang", "accepted", "missed", "rejected",
            "unconfirmed", "ring faults", "talk", "median ring to accept")
DAY = 86400.0
BAR, GAP, HEIGHT, TOP, BOTTOM = 10, 8, 120, 14, 18


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def page(doc: Document) -> str:
    title = "Queue mobiles: %s .. %s" % (doc["since"], doc["until"])
    parts = ['<!DOCTYPE html>\n<html><head><meta charset="utf-8">',
             '<meta http-equiv="Content-Security-Policy" content="%s">' % CSP,
             "<title>%s</title><style>%s</style></head><body>" % (esc(title), STYLE),
             "<h1>%s</h1>" % esc(title),
             '<p>Times in <b id="zone">%s</b>. Lines read %d, not entries %d, other members\' %d.</p>'
             % (esc(doc["time_zone"]), doc["lines"]["read"], doc["lines"]["skipped"],
                doc["lines"]["other_members"])]
    if not doc["queues"]:
        parts.append("<p>No mobile member in the queue_log for this time.</p>")
    for total in doc["queues"]:
        parts.append(queue_table(doc, total))
    parts.append(legend())
    numbers: dict[str, list[Document]] = {}
    for row in doc["members"]:
        numbers.setdefault(row["number"], []).append(row)
    for number, rows in sorted(numbers.items()):
        parts.append('<section class="number" data-number="%s"><h2>%s</h2>%s</section>'
                     % (esc(number), esc(number), chart(number, rows)))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def queue_table(doc: Document, total: Document) -> str:
    rows = [row for row in doc["members"] if row["queue"] == total["queue"]] + [total]
    head = "".join("<th>%s</th>" % esc(h) for h in HEADINGS)
    body = "".join(table_row(row) for row in rows)
    return ('<h2>Queue %s</h2><table class="queue" data-queue="%s"><tr>%s</tr>%s</table>'
            % (esc(total["queue"]), esc(total["queue"]), head, body))


def table_row(row: Document) -> str:
    ring = row["median_ring_to_accept_s"]
    paused = duration(row["paused_s"]) + (" (%s)" % reasons(row["paused_by_reason"], duration)
                                          if row["paused_by_reason"] else "")
    missed = str(row["missed"]) + (" (%s)" % reasons(row["missed_by_cause"]) if row["missed_by_cause"] else "")
    cells = (row["number"], ", ".join(row["names"]), row["sessions"], duration(row["logged_in_s"]), paused,
             row["rung"], row["accepted"], missed, row["rejected"], row["unconfirmed"], row["ring_faults"],
             duration(row["talk_s"]), "" if ring is None else "%g s" % ring)
    kind = "total" if row["number"] == "TOTAL" else "member"
    tds = "".join('<td class="%s">%s</td>' % (name.replace(" ", "-"), esc(cell))
                  for name, cell in zip(HEADINGS, cells))
    return '<tr class="%s" data-number="%s">%s</tr>' % (kind, esc(row["number"]), tds)


def legend() -> str:
    keys = (("logged", "hours logged in"), ("paused", "hours paused"), ("accepted", "calls accepted"),
            ("missed", "calls missed"))
    return '<p class="legend">%s</p>' % "".join(
        '<span style="background:%s"></span>%s' % (color, esc(text))
        for (name, text), color in zip(keys, ("#4a7fb5", "#e0a030", "#3a9a50", "#c8453a")))


def chart(number: str, rows: list[Document]) -> str:
    """Two groups of bars per day, the number's queues summed: hours (of
    24) logged in and paused; calls accepted and missed."""
    days: dict[str, list[float]] = {}
    for row in rows:
        for day in row["days"]:
            sums = days.setdefault(day["date"], [0.0, 0.0, 0.0, 0.0])
            for index, key in enumerate(("logged_in_s", "paused_s", "accepted", "missed")):
                sums[index] += day[key]
    most = max([1.0] + [max(v[2], v[3]) for v in days.values()])
    step = 4 * BAR + 3 * GAP
    width = max(1, len(days)) * step + GAP
    shapes = []
    for index, (date, (logged, paused, accepted, missed)) in enumerate(sorted(days.items())):
        x = GAP + index * step
        bars = (("logged", logged, min(logged, DAY) / DAY, duration(logged)),
                ("paused", paused, min(paused, DAY) / DAY, duration(paused)),
                ("accepted", accepted, accepted / most, "%d" % accepted),
                ("missed", missed, missed / most, "%d" % missed))
        for offset, (kind, value, share, shown) in enumerate(bars):
            height = round(share * HEIGHT, 1)
            left = x + offset * BAR + (GAP if offset >= 2 else 0)
            shapes.append('<rect class="%s" data-day="%s" data-value="%g" x="%d" y="%g" width="%d" height="%g">'
                          '<title>%s %s: %s</title></rect>'
                          % (kind, date, value, left, TOP + HEIGHT - height, BAR, height, date, kind, shown))
        shapes.append('<text x="%d" y="%d">%s</text>' % (x, TOP + HEIGHT + 14, date[5:]))
    return ('<svg class="chart" data-number="%s" width="%d" height="%d" '
            'role="img" aria-label="%s per day">%s</svg>'
            % (esc(number), width, TOP + HEIGHT + BOTTOM, esc(number), "".join(shapes)))
