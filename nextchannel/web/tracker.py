"""The browser tracker shipped with the package (``static/tracker.js``) and its minified form.

Where it sits: **tracker.js** → ``POST /v1/events`` → service. The service serves the minified
script at ``/nextchannel/tracker.js``; a site that bundles its own scripts can take the file
itself (:data:`TRACKER_JS`). The minifier is deliberately simple — it drops comments and
indentation, which this script's style keeps safe (no ``//`` inside strings or regular expressions
of the tracker) — so that no JavaScript toolchain is needed.
"""

from __future__ import annotations

import gzip
import re
from functools import lru_cache
from pathlib import Path

__all__ = ["TRACKER_JS", "minify_js", "tracker_source", "tracker_sizes"]

#: Path of the readable tracker script inside the installed package.
TRACKER_JS = Path(__file__).with_name("static") / "tracker.js"

_BLOCK = re.compile(r"/\*.*?\*/", re.S)
_LINE = re.compile(r"(^|\s)//[^\n]*")


def minify_js(src: str) -> str:
    """Drop comments, indentation and blank lines (safe for code without ``//`` in literals).

    Examples
    --------
    >>> minify_js("/* header */\\nvar a = 1; // one\\n\\n  if (a) {\\n    a++;\\n  }\\n")
    'var a = 1;\\nif (a) {\\na++;\\n}'
    """
    out = _LINE.sub(r"\1", _BLOCK.sub("", src))
    return "\n".join(line.strip() for line in out.splitlines() if line.strip())


@lru_cache(maxsize=2)
def tracker_source(minified: bool = True) -> str:
    """The tracker's JavaScript, minified by default."""
    src = TRACKER_JS.read_text(encoding="utf-8")
    return minify_js(src) if minified else src


def tracker_sizes() -> dict[str, int]:
    """Bytes of the tracker: ``source``, ``minified``, ``minified_gzip`` (gzip level 9).

    Examples
    --------
    >>> s = tracker_sizes()
    >>> s["minified_gzip"] < s["minified"] < s["source"]
    True
    """
    mini = tracker_source(True).encode()
    return {"source": len(tracker_source(False).encode()), "minified": len(mini),
            "minified_gzip": len(gzip.compress(mini, 9, mtime=0))}
