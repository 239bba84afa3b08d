#!/usr/bin/env python3
"""Reads feed files the way a real feed reader would and reports what it saw.

Usage: feedparser_check.py FEED...

RSS and Atom files go through Python's feedparser; `.json` files are read
with the json module and checked against JSON Feed 1.1's required fields,
since feedparser does not read JSON Feed. Prints to stdout a JSON array with
one object per file, in the order given:

    {"path", "bozo" (0/1), "bozo_exception" (str or null), "version",
     "title", "updated", "links": [{"href", "rel"}],
     "entries": [{"id", "title", "link", "published" (UTC, ISO 8601),
                  "updated", "authors", "tags", "summary_length",
                  "content_length", "urls"}]}

`urls` lists every href/src value found in the entry's content, exactly as
written in the feed (feedparser's own resolving of relative URLs is turned
off, so a relative link herald left behind stays visible).

Exit codes: 0 when every file was read (bozo files included: the caller
judges them), 2 on bad usage or an unreadable file, 3 when feedparser is
not installed (the Rust helper skips outside CI and fails in CI).
"""

import calendar
import datetime as dt
import json
import re
import sys

try:
    import feedparser
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"python module feedparser is not installed ({e}); pip install feedparser", file=sys.stderr)
    sys.exit(3)

JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"

# href="…", src='…', poster=… inside HTML; unquoted values stop at space or `>`.
URL_ATTR = re.compile(
    r"""\b(?:href|src|poster)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""",
    re.IGNORECASE,
)


def urls_in(html):
    out = []
    for m in URL_ATTR.finditer(html or ""):
        out.append(next(g for g in m.groups() if g is not None))
    return out


def iso_utc(struct):
    """feedparser's *_parsed values are UTC struct_time; give them back as ISO."""
    if not struct:
        return None
    stamp = calendar.timegm(struct)
    return dt.datetime.fromtimestamp(stamp, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_from_rfc3339(text):
    """An RFC 3339 string in UTC ISO form; raises ValueError when it is not one."""
    if not isinstance(text, str):
        raise ValueError(f"date {text!r} is not a string")
    d = dt.datetime.fromisoformat(text)
    if d.tzinfo is None:
        raise ValueError(f"date {text!r} has no time zone offset")
    return d.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def author_names(entry):
    names = []
    for a in entry.get("authors") or []:
        name = a.get("name") or a.get("email")
        if name:
            names.append(name)
    if not names and entry.get("author"):
        names.append(entry.get("author"))
    return names


def check_xml(path):
    parsed = feedparser.parse(path, resolve_relative_uris=False, sanitize_html=False)
    feed = parsed.get("feed", {})
    exc = parsed.get("bozo_exception")
    entries = []
    for e in parsed.get("entries", []):
        contents = e.get("content") or []
        entries.append(
            {
                "id": e.get("id"),
                "title": e.get("title"),
                "link": e.get("link"),
                "published": iso_utc(e.get("published_parsed")),
                "updated": iso_utc(e.get("updated_parsed")) or e.get("updated"),
                "authors": author_names(e),
                "tags": [t.get("term") for t in e.get("tags") or []],
                "summary_length": len(e.get("summary") or ""),
                "content_length": sum(len(c.get("value") or "") for c in contents),
                "urls": [u for c in contents for u in urls_in(c.get("value"))],
            }
        )
    return {
        "path": path,
        "bozo": 1 if parsed.get("bozo") else 0,
        "bozo_exception": None if exc is None else f"{type(exc).__name__}: {exc}",
        "version": parsed.get("version") or None,
        "title": feed.get("title"),
        "updated": iso_utc(feed.get("updated_parsed")) or feed.get("updated"),
        "links": [{"href": l.get("href"), "rel": l.get("rel")} for l in feed.get("links", [])],
        "entries": entries,
    }


def check_json_feed(path):
    """JSON Feed 1.1 by hand: the required fields and the shape of each item."""
    problems = []
    report = {
        "path": path,
        "bozo": 0,
        "bozo_exception": None,
        "version": None,
        "title": None,
        "updated": None,
        "links": [],
        "entries": [],
    }
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        report.update(bozo=1, bozo_exception=f"{type(e).__name__}: {e}")
        return report
    if not isinstance(doc, dict):
        report.update(bozo=1, bozo_exception="top level is not a JSON object")
        return report

    version = doc.get("version")
    report["version"] = version
    if version != JSON_FEED_VERSION:
        problems.append(f"version is {version!r}, not {JSON_FEED_VERSION!r}")
    title = doc.get("title")
    report["title"] = title
    if not isinstance(title, str) or not title:
        problems.append("title is missing or not a string")
    for key, rel in (("home_page_url", "alternate"), ("feed_url", "self")):
        if key in doc:
            if isinstance(doc[key], str):
                report["links"].append({"href": doc[key], "rel": rel})
            else:
                problems.append(f"{key} is not a string")
    if "authors" in doc and not isinstance(doc["authors"], list):
        problems.append("authors is not an array")
    items = doc.get("items")
    if not isinstance(items, list):
        problems.append("items is missing or not an array")
        items = []

    newest = None
    for n, item in enumerate(items):
        where = f"items[{n}]"
        if not isinstance(item, dict):
            problems.append(f"{where} is not an object")
            continue
        item_id = item.get("id")
        if not isinstance(item_id, str) or not item_id:
            problems.append(f"{where}.id is missing or not a non-empty string")
        html = item.get("content_html")
        text = item.get("content_text")
        if html is None and text is None:
            problems.append(f"{where} has neither content_html nor content_text")
        for key, value in (("content_html", html), ("content_text", text)):
            if value is not None and not isinstance(value, str):
                problems.append(f"{where}.{key} is not a string")
        dates = {}
        for key in ("date_published", "date_modified"):
            if key in item:
                try:
                    dates[key] = iso_from_rfc3339(item[key])
                except ValueError as e:
                    problems.append(f"{where}.{key}: {e}")
        for d in dates.values():
            newest = d if newest is None or d > newest else newest
        authors = item.get("authors", [])
        if not isinstance(authors, list):
            problems.append(f"{where}.authors is not an array")
            authors = []
        tags = item.get("tags", [])
        if not isinstance(tags, list):
            problems.append(f"{where}.tags is not an array")
            tags = []
        content = html if isinstance(html, str) else ""
        report["entries"].append(
            {
                "id": item_id,
                "title": item.get("title"),
                "link": item.get("url"),
                "published": dates.get("date_published"),
                "updated": dates.get("date_modified"),
                "authors": [a.get("name") for a in authors if isinstance(a, dict) and a.get("name")],
                "tags": [t for t in tags if isinstance(t, str)],
                "summary_length": len(item.get("summary") or ""),
                "content_length": len(content) + len(text if isinstance(text, str) else ""),
                "urls": urls_in(content),
            }
        )
    report["updated"] = newest
    if problems:
        report["bozo"] = 1
        report["bozo_exception"] = "JSON Feed 1.1: " + "; ".join(problems)
    return report


def main(argv):
    if not argv:
        print("usage: feedparser_check.py FEED...", file=sys.stderr)
        return 2
    reports = []
    for path in argv:
        try:
            if path.endswith(".json"):
                reports.append(check_json_feed(path))
            else:
                with open(path, "rb"):
                    pass  # feedparser reads a missing path as a URL or a string
                reports.append(check_xml(path))
        except OSError as e:
            print(f"{path}: {e}", file=sys.stderr)
            return 2
    json.dump(reports, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
