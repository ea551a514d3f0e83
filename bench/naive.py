"""The naive baseline: a loop of ``feedparser.parse(url)``, a seen-set in a JSON file, one regex per rule.

Usage: ``python bench/naive.py URLS.txt RULES.json SEEN.json MATCHES.txt``, where RULES.json maps a
rule id to a regular expression. Appends one line per (new item, matching rule) to MATCHES.txt.
"""

import json
import re
import sys
from pathlib import Path

import feedparser


def main(urls_file: str, rules_file: str, seen_file: str, sink_file: str) -> int:
    urls = Path(urls_file).read_text(encoding="utf-8").split()
    patterns = json.loads(Path(rules_file).read_text(encoding="utf-8"))
    rules = {rid: re.compile(rx, re.IGNORECASE) for rid, rx in patterns.items()}
    seen_path = Path(seen_file)
    seen = set(json.loads(seen_path.read_text())) if seen_path.exists() else set()
    new = matched = 0
    with open(sink_file, "a", encoding="utf-8") as sink:
        for url in urls:
            parsed = feedparser.parse(url)
            for entry in parsed.entries:
                key = url + " " + entry.get("id", entry.get("link", entry.get("title", "")))
                if key in seen:
                    continue
                seen.add(key)
                new += 1
                text = entry.get("title", "") + "\n" + entry.get("summary", "")
                for rid, rx in rules.items():
                    if rx.search(text):
                        matched += 1
                        sink.write(f"{rid}\t{entry.get('title', '')}\t{entry.get('link', '')}\n")
    seen_path.write_text(json.dumps(sorted(seen)))
    print(f"{len(urls)} feeds: {new} new items, {matched} matches")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
