"""Small real data sets shipped inside the package, with loaders in the style of scikit-learn and river.

Each data set lives in ``nextchannel/datasets/data/`` next to a ``PROVENANCE.md`` that records
where it came from, its licence and checksums; the loader returns typed pandas objects, so
notebooks, tests and examples run from a plain ``pip install`` with no download.

Examples
--------
>>> from nextchannel.datasets import load_online_shoppers
>>> load_online_shoppers().shape
(12330, 18)
"""

from __future__ import annotations

from nextchannel.datasets.online_shoppers import load_online_shoppers

__all__ = ["load_online_shoppers"]
