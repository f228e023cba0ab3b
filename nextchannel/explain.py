"""Reasons: the few signals that drove a decision, in words a CX person reads.

Where it sits: models → policy → **decision** (its ``reasons``). The reasons explain the model that
decided: the value models' path contributions (:class:`PathContributions`) to the expected-value
gap between the chosen action and its runner-up (:func:`~nextchannel.policy.runner_up_many`) rank
the signals; each feature has a phrase template that renders its value ("idle 45 s on checkout",
"3 form errors", "chat wait 40 s"). The strongest signals *for* the chosen action are named.

Examples
--------
>>> from nextchannel.features import SESSION_FEATURES
>>> names = ["idle_current_page_s", "form_errors", "page_type"]
>>> phrase("idle_current_page_s", {"idle_current_page_s": 45.0, "page_type": 5.0})
'idle 45 s on checkout'
>>> top_reasons(names, [45.0, 3.0, 5.0], contrib=[0.8, 0.5, -0.1], offer=True, k=2)
['idle 45 s on checkout', '3 form errors']
>>> phrase("page_type", {"page_type": 6.0}), phrase("funnel_stage", {"funnel_stage": -1.0})
('on an account page', 'not in the purchase funnel yet')
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as _np

from nextchannel.schema import DEVICES, LANGUAGES, PAGE_TYPES, REFERRERS

__all__ = ["PathContributions", "phrase", "top_reasons", "top_reasons_many", "top_reasons_one"]

_STAGES = {0: "reached home", 1: "browsing", 2: "reached a product", 3: "reached the cart", 4: "reached checkout"}


def _name(vocab: Sequence[str], v: float) -> str:
    i = int(v) if v == v else -1
    return vocab[i] if 0 <= i < len(vocab) else "unknown"


def _a(word: str) -> str:
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _n(v: float, one: str, many: str) -> str:
    k = int(round(v))
    return f"{k} {one if k == 1 else many}"


_PHRASES: dict[str, Callable[[float, Mapping[str, float]], str]] = {
    "dwell_current_s": lambda v, f: f"{v:,.0f} s on this {_name(PAGE_TYPES, f.get('page_type', -1))} page",
    "session_duration_s": lambda v, f: f"{v / 60:,.1f} min in the session",
    "longest_dwell_s": lambda v, f: f"longest dwell {v:,.0f} s",
    "idle_count": lambda v, f: _n(v, "idle period", "idle periods"),
    "idle_total_s": lambda v, f: f"idle {v:,.0f} s in total",
    "idle_max_s": lambda v, f: f"longest idle {v:,.0f} s",
    "idle_current_page_s": lambda v, f: f"idle {v:,.0f} s on {_name(PAGE_TYPES, f.get('page_type', -1))}",
    "back_navigations": lambda v, f: _n(v, "back-and-forth navigation", "back-and-forth navigations"),
    "revisits": lambda v, f: _n(v, "page revisited", "pages revisited"),
    "scroll_reversals": lambda v, f: _n(v, "scroll reversal", "scroll reversals"),
    "form_errors": lambda v, f: _n(v, "form error", "form errors"),
    "cart_removals": lambda v, f: _n(v, "item removed from the cart", "items removed from the cart"),
    "searches_no_result": lambda v, f: _n(v, "search without result", "searches without result"),
    "exit_intents": lambda v, f: "about to leave" if v >= 1 else "no exit intent",
    "help_views": lambda v, f: _n(v, "help/contact page view", "help/contact page views"),
    "time_since_forward_s": lambda v, f: f"no progress for {v:,.0f} s",
    "time_since_exit_intent_s": lambda v, f: f"exit intent {v:,.0f} s ago",
    "pages_viewed": lambda v, f: _n(v, "page viewed", "pages viewed"),
    "funnel_stage": lambda v, f: _STAGES.get(int(v) if v == v else -1, "not in the purchase funnel yet"),
    "page_type": lambda v, f: f"on {_a(_name(PAGE_TYPES, v))} page",
    "cart_value": lambda v, f: f"cart worth {v:,.0f}",
    "cart_items": lambda v, f: _n(v, "item in the cart", "items in the cart"),
    "searches": lambda v, f: _n(v, "search", "searches"),
    "clicks": lambda v, f: _n(v, "click", "clicks"),
    "form_submits": lambda v, f: _n(v, "form submitted", "forms submitted"),
    "scroll_depth": lambda v, f: f"scrolled {v:.0%} down the page",
    "offers_accepted": lambda v, f: _n(v, "offer accepted", "offers accepted"),
    "contacts_started": lambda v, f: _n(v, "contact started", "contacts started"),
    "purchased": lambda v, f: "has bought" if v >= 1 else "has not bought yet",
    "device": lambda v, f: f"on {_name(DEVICES, v)}",
    "hour_of_day": lambda v, f: f"at {int(v):02d}:00 local time",
    "weekday": lambda v, f: ("on a weekend" if v >= 5 else "on a weekday"),
    "language": lambda v, f: f"language {_name(LANGUAGES, v)}",
    "referrer": lambda v, f: f"came from {_name(REFERRERS, v)}",
    "is_known": lambda v, f: "known customer" if v >= 1 else "anonymous visitor",
    "is_returning": lambda v, f: "returning visitor" if v >= 1 else "first visit",
    "offers_shown": lambda v, f: _n(v, "offer already shown", "offers already shown"),
    "offers_dismissed": lambda v, f: _n(v, "offer dismissed", "offers dismissed"),
    "time_since_offer_s": lambda v, f: f"last offer {v:,.0f} s ago",
    "time_since_dismiss_s": lambda v, f: f"dismissed an offer {v:,.0f} s ago",
    "prof_n_contacts": lambda v, f: _n(v, "past contact", "past contacts"),
    "prof_days_since_last": lambda v, f: f"last contact {v:,.0f} days ago",
}


def phrase(name: str, features: Mapping[str, float]) -> str:
    """The feature's value in words (a generic ``name = value`` for features without a template)."""
    v = features.get(name, math.nan)
    if v != v:
        return f"{name.replace('_', ' ')} unknown"
    fn = _PHRASES.get(name)
    if fn is not None:
        return fn(v, features)
    if name.startswith("prof_"):
        parts = name.split("_", 2)  # prof_<stat>_<channel>
        if len(parts) == 3:
            stat, ch = parts[1], parts[2].replace("_", " ")
            if stat == "share":
                return f"{v:.0%} of past contacts by {ch}"
            if stat == "n":
                return _n(v, f"past {ch} contact", f"past {ch} contacts")
            if stat == "resolved":
                return f"{v:.0%} of past {ch} contacts resolved"
            if stat == "sat":
                return f"satisfaction {v:.1f}/5 with {ch}"
            if stat == "optout":
                return f"opted out of {ch}" if v >= 1 else f"accepts {ch}"
    if name.startswith("dwell_") and name.endswith("_s"):
        return f"{v:,.0f} s on {name[6:-2]} pages"
    # the per-request channel context the value models read (open_<ch>, wait_<ch>_s, lang_ok_<ch>)
    if name.startswith("wait_") and name.endswith("_s"):
        return f"{name[5:-2]} wait {v:,.0f} s"
    if name.startswith("open_"):
        return f"{name[5:]} {'open' if v > 0 else 'closed'}"
    if name.startswith("lang_ok_"):
        return f"{name[8:]} {'serves' if v > 0 else 'does not serve'} the visitor's language"
    return f"{name.replace('_', ' ')} {v:,.4g}"


def top_reasons(names: Sequence[str], values: Sequence[float], contrib: Sequence[float], *, offer: bool,
                k: int = 3, min_abs: float = 1e-6,
                phrase_fn: Callable[[str, Mapping[str, float]], str] = phrase) -> list[str]:
    """Phrases of the ``k`` features that pushed hardest towards (``offer``) or against offering.

    ``phrase_fn`` renders a feature (default :func:`phrase`; a model set with the user's own columns
    passes :meth:`~nextchannel.featurespec.FeatureSpec.phraser`, which speaks the user's names).
    """
    sign = 1.0 if offer else -1.0
    order = sorted(range(len(names)), key=lambda i: -sign * contrib[i])
    feats = dict(zip(names, values))
    out: list[str] = []
    for i in order:
        if sign * contrib[i] <= min_abs or len(out) >= k:
            break
        text = phrase_fn(names[i], feats)
        if text not in out:
            out.append(text)
    return out


def top_reasons_many(names: Sequence[str], values: "np.ndarray", contrib: "np.ndarray", offer: "np.ndarray", *,
                     k: int = 3, min_abs: float = 1e-6,
                     phrase_fn: Callable[[str, Mapping[str, float]], str] = phrase) -> list[list[str]]:
    """:func:`top_reasons` for many rows at once (rows of ``values`` and ``contrib``; ``offer`` per row).

    Ranks with one stable argsort per batch and phrases only the leading candidates; a row whose
    candidates run out before ``k`` distinct phrases falls back to :func:`top_reasons`, so the
    result is identical row by row.
    """
    import numpy as np

    if len(values) == 0:
        return []
    sign = np.where(np.asarray(offer, dtype=bool), 1.0, -1.0)[:, None]
    signed = sign * np.asarray(contrib, dtype=float)
    width = min(len(names), k + 3)
    order = np.argsort(-signed, axis=1, kind="stable")[:, :width]
    candidates = np.take_along_axis(signed, order, axis=1).tolist()  # plain ints and floats: a fast loop
    order_rows = order.tolist()
    index = _index_of_names(names)
    return [_phrase_leading(names, index, values[r], contrib[r], order_rows[r], candidates[r], bool(sign[r, 0] > 0),
                            k, min_abs, phrase_fn) for r in range(len(values))]


def top_reasons_one(names: Sequence[str], values: "np.ndarray", contrib: "np.ndarray", *, offer: bool = True,
                    k: int = 3, min_abs: float = 1e-6,
                    phrase_fn: Callable[[str, Mapping[str, float]], str] = phrase) -> list[str]:
    """:func:`top_reasons_many` for one row (1-D ``values`` and ``contrib``), with fewer array steps; the same result.

    Examples
    --------
    >>> import numpy as np
    >>> names = ["form_errors", "pages_viewed", "cart_items"]
    >>> top_reasons_one(names, np.array([3.0, 12.0, 1.0]), np.array([0.4, 0.9, -0.2]), k=2)
    ['12 pages viewed', '3 form errors']
    """
    contrib = _np.asarray(contrib, dtype=float)
    signed = contrib if offer else -contrib   # x * 1.0 is x and x * -1.0 is -x: the floats top_reasons_many ranks
    order = _np.argsort(-signed, kind="stable")[:min(len(names), k + 3)]
    return _phrase_leading(names, _index_of_names(names), values, contrib, order.tolist(), signed[order].tolist(),
                           offer, k, min_abs, phrase_fn)


def _phrase_leading(names: Sequence[str], index: dict[str, int], values: "np.ndarray", contrib: "np.ndarray",
                    order: list[int], candidates: list[float], offer: bool, k: int, min_abs: float,
                    phrase_fn: Callable[[str, Mapping[str, float]], str]) -> list[str]:
    """One row's phrases from its leading candidates; :func:`top_reasons` if they run out before ``k``."""
    feats = None
    res: list[str] = []
    exhausted = True
    for j, c in zip(order, candidates):
        if c <= min_abs or len(res) >= k:
            exhausted = False
            break
        if feats is None:
            feats = _RowFeatures(index, values.tolist())
        text = phrase_fn(names[j], feats)
        if text not in res:
            res.append(text)
    if exhausted and len(res) < k and len(order) < len(names):
        res = top_reasons(names, values.tolist(), contrib.tolist(), offer=offer, k=k, min_abs=min_abs,
                          phrase_fn=phrase_fn)
    return res


@functools.lru_cache(maxsize=16)
def _index_of(names: tuple[str, ...]) -> dict[str, int]:
    return {n: i for i, n in enumerate(names)}  # a repeated name: the last, as dict(zip(names, values))


_INDEX_BY_ID: dict[int, tuple[tuple[str, ...], dict[str, int]]] = {}


def _index_of_names(names: Sequence[str]) -> dict[str, int]:
    """:func:`_index_of` without hashing every name on each call when ``names`` is a tuple (the
    scorer's row names, read per request): found by identity, the entry holding the tuple (so its id
    cannot be reused while cached)."""
    if type(names) is not tuple:
        return _index_of(tuple(names))
    hit = _INDEX_BY_ID.get(id(names))
    if hit is not None and hit[0] is names:
        return hit[1]
    index = _index_of(names)
    if len(_INDEX_BY_ID) >= 16:
        _INDEX_BY_ID.clear()
    _INDEX_BY_ID[id(names)] = (names, index)
    return index


class _RowFeatures(Mapping[str, float]):
    """A row's features by name for the phrase templates, without building a dict of every feature."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: dict[str, int], values: list[float]) -> None:
        self._index, self._values = index, values

    def __getitem__(self, name: str) -> float:
        return self._values[self._index[name]]

    def get(self, name: str, default: Any = None) -> Any:
        i = self._index.get(name)
        return default if i is None else self._values[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


class PathContributions:
    """Exact additive feature contributions of a stacked tree model, from the leaves a row falls in.

    Every split on a row's path through a tree credits its feature with the change of the node
    value it leads to (child value − node value; the path contributions of Saabas'
    ``treeinterpreter``); over a model's trees they sum, with the root values, to the model's raw
    score exactly. They cost one leaf lookup per tree — the model's own evaluation — where
    LightGBM's SHAP contributions cost ~65 times that on the value models. The tables are built
    once from the model text; a row's contributions are gathered from its leaf indices
    (``predict_type="leaf"`` of :class:`~nextchannel.fastpredict.FastBooster`).

    Parameters
    ----------
    text : str
        Model text in the multiclass layout (:func:`~nextchannel.fastpredict.stack_model_texts`),
        ``num_models`` trees per iteration.
    num_models : int
    num_features : int

    Examples
    --------
    >>> import numpy as np, lightgbm as lgb
    >>> from nextchannel.fastpredict import ModelStack
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 3))
    >>> a = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1}, lgb.Dataset(X, 2 * X[:, 0]), 8)
    >>> b = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1}, lgb.Dataset(X, X[:, 1]), 5)
    >>> stack = ModelStack([a.model_to_string(), b.model_to_string()])
    >>> paths = PathContributions(stack.text, 2, 3)
    >>> leaves = stack.leaf.predict_many(X[:4]).astype(np.int64)
    >>> diff = paths.difference(leaves, np.array([0] * 4), np.array([1] * 4))
    >>> gap = a.predict(X[:4]) - b.predict(X[:4])
    >>> bool(np.allclose(diff.sum(axis=1) + paths.root[0] - paths.root[1], gap, atol=1e-9))
    True
    >>> stack.close()
    """

    def __init__(self, text: str, num_models: int, num_features: int) -> None:
        from nextchannel.fastpredict import _split_model_text

        import numpy as np

        _, blocks = _split_model_text(text)
        self.num_models = int(num_models)
        self.num_features = int(num_features)
        offsets, feats, deltas = [], [], []
        root = [0.0] * self.num_models
        total = 0
        for t, block in enumerate(blocks):
            f = dict(line.split("=", 1) for line in block.split("\n") if "=" in line)
            n_leaves = int(f["num_leaves"])
            leaf_value = [float(x) for x in f["leaf_value"].split()]
            offsets.append(total)
            total += n_leaves
            if n_leaves == 1:
                root[t % self.num_models] += leaf_value[0]
                feats.append([[]])
                deltas.append([[]])
                continue
            left = [int(x) for x in f["left_child"].split()]
            right = [int(x) for x in f["right_child"].split()]
            split = [int(x) for x in f["split_feature"].split()]
            value = [float(x) for x in f["internal_value"].split()]
            root[t % self.num_models] += value[0]
            paths_f: list[list[int]] = [[] for _ in range(n_leaves)]
            paths_d: list[list[float]] = [[] for _ in range(n_leaves)]
            stack = [(0, [], [])]
            while stack:  # depth first over the internal nodes, carrying the path so far
                node, pf, pd_ = stack.pop()
                for child in (left[node], right[node]):
                    child_value = leaf_value[~child] if child < 0 else value[child]
                    cf, cd = pf + [split[node]], pd_ + [child_value - value[node]]
                    if child < 0:
                        paths_f[~child], paths_d[~child] = cf, cd
                    else:
                        stack.append((child, cf, cd))
            feats.append(paths_f)
            deltas.append(paths_d)
        depth = max((len(p) for tree in feats for p in tree), default=0)
        self.feature = np.zeros((total, max(depth, 1)), dtype=np.int64)
        self.delta = np.zeros((total, max(depth, 1)))
        g = 0
        for tree_f, tree_d in zip(feats, deltas):
            for pf, pd_ in zip(tree_f, tree_d):
                self.feature[g, :len(pf)] = pf
                self.delta[g, :len(pd_)] = pd_
                g += 1
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.root = np.asarray(root)
        # for difference_one: the paths of every leaf, then the same paths with the deltas negated
        # (x * -1.0 and -x are the same float), so that one gather gives a row's signed terms; the
        # feature indices as int32 (half the bytes a request pulls into cache; bincount reads any int)
        self._signed_feature = np.concatenate([self.feature, self.feature]).astype(
            np.int32 if self.num_features < 2**31 else np.int64)
        self._signed_delta = np.concatenate([self.delta, -self.delta])
        self._trees_per_model = len(blocks) // self.num_models
        self._pair_offsets: dict[tuple[int, int], np.ndarray] = {}

    def difference_one(self, leaves: "np.ndarray", first: int, second: int) -> "np.ndarray":
        """:meth:`difference` for one row, from the leaves of the two models' own trees only.

        Parameters
        ----------
        leaves : array (2 * trees per model,)
            The leaf index of each tree of model ``first``, then of model ``second``, in their order
            (the leaves the stack's trees ``m``, ``m + num_models``, ... give); a model with fewer
            trees than the stack pads with 0 (its padding trees have one leaf). Integers, possibly
            held as floats (a leaf predictor's output).
        first, second : int

        Returns
        -------
        array (num_features,)
            Bit for bit row ``r`` of :meth:`difference` (the same terms, summed in the same order).
        """
        import numpy as np

        ids = self._pair_base(first, second) + leaves.astype(np.intp)
        return np.bincount(np.take(self._signed_feature, ids, axis=0).ravel(),
                           weights=np.take(self._signed_delta, ids, axis=0).ravel(), minlength=self.num_features)

    def _pair_base(self, first: int, second: int) -> "np.ndarray":
        """Rows of the signed tables of the first leaf of each tree of ``first`` then of ``second``."""
        import numpy as np

        base = self._pair_offsets.get((first, second))
        if base is None:
            per_model = np.arange(self._trees_per_model) * self.num_models
            base = np.concatenate([self.offsets[per_model + first], len(self.feature) + self.offsets[per_model + second]])
            self._pair_offsets[(first, second)] = base
        return base

    def difference_pairs(self, leaves: "np.ndarray", first: "np.ndarray", second: "np.ndarray") -> "np.ndarray":
        """:meth:`difference_one` for many rows: row ``r`` bit for bit ``difference_one(leaves[r], first[r], second[r])``.

        Parameters
        ----------
        leaves : array (n_rows, 2 * trees per model)
            Per row the leaves of model ``first[r]``'s trees then of ``second[r]``'s (the layout of
            :meth:`difference_one`, e.g. from :meth:`~nextchannel.fastpredict.ModelStack.pair_leaves_many`).
        first, second : int arrays (n_rows,)
        """
        import numpy as np

        n = len(leaves)
        if n == 0:
            return np.zeros((0, self.num_features))
        base = np.empty(leaves.shape, dtype=np.intp)
        pairs = np.asarray(first, dtype=np.intp) * self.num_models + np.asarray(second, dtype=np.intp)
        for p in np.unique(pairs).tolist():
            base[pairs == p] = self._pair_base(p // self.num_models, p % self.num_models)
        ids = base + leaves.astype(np.intp)
        # each row's terms in difference_one's order, into its own bins (bincount adds in input order)
        bins = np.take(self._signed_feature, ids, axis=0) + (self.num_features * np.arange(n))[:, None, None]
        return np.bincount(bins.ravel(), weights=np.take(self._signed_delta, ids, axis=0).ravel(),
                           minlength=n * self.num_features).reshape(n, -1)

    def difference(self, leaves: "np.ndarray", first: "np.ndarray", second: "np.ndarray") -> "np.ndarray":
        """Per row, contributions to model ``first[r]``'s raw score minus model ``second[r]``'s.

        Parameters
        ----------
        leaves : int array (n_rows, n_trees)
            The stack's leaf index per tree (its ``"leaf"`` predictions).
        first, second : int arrays (n_rows,)
            Model (class) indices.

        Returns
        -------
        array (n_rows, num_features)
            Row ``r`` sums the path contributions of ``first[r]``'s trees minus ``second[r]``'s,
            in a fixed order, so that a row gives the same numbers alone and in a batch.
        """
        import numpy as np

        n = len(leaves)
        k = self.num_models
        per_model = np.arange(leaves.shape[1] // k) * k   # the trees of model 0; model m's are these + m
        rows = np.arange(n)[:, None]
        trees = np.concatenate([per_model[None, :] + np.asarray(first, dtype=np.int64)[:, None],
                                per_model[None, :] + np.asarray(second, dtype=np.int64)[:, None]], axis=1)
        ids = self.offsets[trees] + leaves[rows, trees]                # (n, 2 * trees per model)
        half = per_model.size
        sign = np.where(np.arange(2 * half) < half, 1.0, -1.0)
        bins = self.feature[ids] + (self.num_features * rows)[:, :, None]
        weights = self.delta[ids] * sign[None, :, None]
        return np.bincount(bins.ravel(), weights=weights.ravel(), minlength=n * self.num_features).reshape(n, -1)
