"""Tests of nextchannel.report (the report folder, atomic publishing) and nextchannel.plots (figures)."""

from __future__ import annotations

import html.parser
import threading

import numpy as np
import pandas as pd
import pytest

from nextchannel import plots
from nextchannel.errors import ValidationError
from nextchannel.report import REPORT_FILES, report_from_files, write_report
from nextchannel.simulation import simulate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sim():
    return simulate(150, seed=5)


def _fake_decisions(truth: pd.DataFrame, actions: tuple[str, ...]) -> pd.DataFrame:
    """A decisions frame of the contract: offer chat when the oracle says chat beats none."""
    gain = truth["ev_chat"] - truth["ev_none"]
    offer = (gain > 0).to_numpy()
    d = pd.DataFrame({"session_id": truth["session_id"], "ts": truth["ts"]})
    d["action"] = np.where(offer, "chat", "none")
    d["offer"] = offer
    d["channel"] = pd.Series(np.where(offer, "chat", None), dtype=object)
    d["propensity"] = 1.0
    d["offer_score"] = gain
    for a in actions:
        d[f"ev_{a}"] = truth[f"ev_{a}"]
        d[f"p_{a}"] = (d["action"] == a).astype(float)
    idle = (truth["trigger"] == "idle").to_numpy()
    d["reasons"] = np.where(idle, "idle 45 s on page", "") + np.where(offer, " | chat beats none by 1.5", "")
    d["why_not"] = np.where(~truth["open_phone"].to_numpy(), "phone: closed", "")
    return d


@pytest.fixture(scope="module")
def decisions(sim):
    return _fake_decisions(sim.decisions, sim.config.channels.actions)


def _diag_inputs(truth: pd.DataFrame):
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.5, len(truth))
    cal = {"y": rng.uniform(size=len(p)) < p, "p": p}
    qini = {"y": truth["success"].astype(int), "treatment": (truth["action"] != "none").astype(int),
            "score": truth["ev_chat"] - truth["ev_none"]}
    return cal, qini


def _check_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path.name
    assert len(data) > 5_000, (path.name, len(data))


def _siblings(path):
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


class _HTMLCheck(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.imgs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(dict(attrs)["src"])


# ---------------------------------------------------------------------------------------------
# The report folder
# ---------------------------------------------------------------------------------------------
def test_full_report_has_every_section_and_valid_figures(tmp_path, sim, decisions):
    cal, qini = _diag_inputs(sim.decisions)
    out = write_report(tmp_path / "rep", decisions=decisions, truth=sim.decisions, logs=sim.decisions,
                       calibration=cal, qini=qini, capacity_per_hour={"chat": 0.5}, title="Weekly <report>")
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["index.html", "report.md", *REPORT_FILES])
    for f in REPORT_FILES:
        _check_png(out / f)
    page = (out / "index.html").read_text(encoding="utf-8")
    parser = _HTMLCheck()
    parser.feed(page)
    assert len(parser.imgs) == len(REPORT_FILES) and all(s.startswith("data:image/png;base64,") for s in parser.imgs)
    assert "<title>Weekly &lt;report&gt;</title>" in page   # escaped
    for section in ("Headline figures", "Policy values", "Channels and load", "When offers happen",
                    "Reasons and why-nots", "Model diagnostics"):
        assert f"<h2>{section}</h2>" in page
    for caption in REPORT_FILES.values():
        assert caption.replace("'", "&#x27;") in page
    md = (out / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# Weekly <report>\n")
    for f in REPORT_FILES:
        assert f"![{f}]({f})" in md
    assert "| this policy (true value) |" in md and "| this policy (SNIPS on logs) |" in md
    assert "idle N s on page" in md and "phone: closed" in md
    assert "chat: " in md   # capacity note
    assert _siblings(out) == []


def test_sections_are_skipped_without_their_inputs(tmp_path, decisions):
    bare = decisions.drop(columns=["reasons", "why_not"])
    out = write_report(tmp_path / "r", decisions=bare)
    assert sorted(p.name for p in out.iterdir()) == ["channel_mix.png", "index.html", "offer_timing.png", "report.md"]
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "## Policy values" not in md and "## Model diagnostics" not in md and "## Reasons" not in md
    assert "## Headline figures" in md and "share of offers accepted" not in md
    # no offers at all: the timing figure is left out, the section still says so in its table
    none = bare.assign(action="none", offer=False, channel=None)
    out2 = write_report(tmp_path / "r2", decisions=none)
    assert not (out2 / "offer_timing.png").exists() and (out2 / "channel_mix.png").is_file()


def test_given_policy_values_are_used_with_truth_references(tmp_path, sim, decisions):
    table = pd.DataFrame({"value": [0.4, 0.55], "low": [0.3, 0.5], "high": [0.5, 0.6]},
                         index=["champion v1", "challenger v2"])
    out = write_report(tmp_path / "r", decisions=decisions, truth=sim.decisions, policy_values=table)
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "| champion v1 | 0.400 | 0.300 | 0.500 |" in md and "SNIPS" not in md
    assert "References: oracle = " in md
    _check_png(out / "policy_values.png")


def test_overwrite_replaces_a_report_atomically_and_refuses_other_folders(tmp_path, decisions):
    small = decisions.head(40)
    p = write_report(tmp_path / "r", decisions=small, title="first")
    write_report(p, decisions=small, title="second")
    assert "<h1>second</h1>" in (p / "index.html").read_text(encoding="utf-8")
    assert _siblings(p) == []
    with pytest.raises(ValidationError, match=r"already exists; pass overwrite=True to replace it"):
        write_report(p, decisions=small, overwrite=False)
    other = tmp_path / "home"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ValidationError, match=r"refusing to replace .*home.*: it is not a report folder"):
        write_report(other, decisions=small)
    assert (other / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (write_report(empty, decisions=small) / "index.html").is_file()


@pytest.mark.parametrize("existing", [False, True])
def test_crash_mid_write_leaves_no_half_written_folder(tmp_path, monkeypatch, decisions, existing):
    from matplotlib.figure import Figure

    small = decisions.head(60)
    path = tmp_path / "r"
    if existing:
        write_report(path, decisions=small, title="old")
        before = {f.name: f.read_bytes() for f in path.iterdir()}
    real = Figure.savefig
    calls = []

    def flaky(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:   # the temp folder exists and holds one figure by now
            raise OSError("disk full")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", flaky)
    with pytest.raises(OSError, match="disk full"):
        write_report(path, decisions=small, title="new")
    assert len(calls) == 2
    assert _siblings(path) == []
    if existing:
        assert {f.name: f.read_bytes() for f in path.iterdir()} == before
    else:
        assert not path.exists()


def test_bad_inputs_raise_before_anything_is_written(tmp_path, decisions):
    path = tmp_path / "r"
    cases = [
        (dict(calibration={"y": [0, 1]}), r"calibration must be a dict with keys \['y', 'p'\], missing \['p'\]"),
        (dict(qini={"y": [1], "treatment": [1], "score": [1], "weight": [1]}), r"unknown \['weight'\]"),
        (dict(policy_values=pd.DataFrame({"value": [1.0]})), r"policy_values must be a DataFrame indexed by policy"),
        (dict(truth=pd.DataFrame({"needs_help": [True]})), r"truth must be aligned with decisions by index"),
        (dict(capacity_per_hour={"chat": -1}), r"capacity_per_hour\['chat'\] must be a finite number >= 0"),
        (dict(title=""), r"title must be a non-empty string"),
    ]
    for kw, match in cases:
        with pytest.raises(ValidationError, match=match):
            write_report(path, decisions=decisions.head(30), **kw)
        assert not path.exists() and _siblings(path) == []
    with pytest.raises(ValidationError, match=r"path must name a report folder"):
        write_report(tmp_path / "..", decisions=decisions.head(30))
    with pytest.raises(ValidationError, match=r"decisions must be a pandas DataFrame, got list"):
        write_report(path, decisions=[{"action": "none"}])


def test_report_on_decisions_without_sessions_or_times(tmp_path):
    """A team's own campaign log has one decision per customer and no timestamps: the report says so
    and leaves out the time facts instead of failing."""
    d = pd.DataFrame({"action": ["none", "WhatsApp", "WhatsApp", "none"], "p_none": [1.0, 0, 0, 1],
                      "p_WhatsApp": [0.0, 1, 1, 0], "ev_none": 0.0, "ev_WhatsApp": [0.1, 0.5, 0.4, -0.2],
                      "reasons": ["", "plan = gold", "plan = gold | visits = 3", ""]})
    out = write_report(tmp_path / "r", decisions=d)
    md = (out / "report.md").read_text()
    assert "4 decisions without timestamps" in md and "plan = gold" in md
    assert not (out / "offer_timing.png").exists()


def test_report_from_files(tmp_path, sim, decisions):
    dpath, tpath = tmp_path / "decisions.csv", tmp_path / "truth.csv"
    decisions.to_csv(dpath, index=False)
    sim.decisions.to_csv(tpath, index=False)
    out = report_from_files(dpath, tmp_path / "rep", tpath)
    assert {"policy_values.png", "top_reasons.png", "channel_mix.png", "offer_timing.png"} <= {
        p.name for p in out.iterdir()}
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "needed no help" in md and "this policy (true value)" in md
    with pytest.raises(ValidationError, match=r"decisions_csv must be a readable CSV file"):
        report_from_files(tmp_path / "missing.csv", tmp_path / "x")


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------
def test_figures_have_labelled_axes(sim, decisions):
    cal, qini = _diag_inputs(sim.decisions)
    figs = {
        "calibration": plots.plot_calibration(cal["y"], cal["p"]),
        "qini": plots.plot_qini(qini["y"], qini["treatment"], qini["score"]),
        "values": plots.plot_policy_values(pd.DataFrame({"value": [1.0], "low": [0.9], "high": [1.1]}, index=["a"]),
                                           reference={"oracle": 1.5}),
        "mix": plots.plot_channel_mix(decisions, capacity_per_hour={"chat": 0.5, "phone": 0}),
        "timing": plots.plot_offer_timing(decisions),
        "reasons": plots.plot_top_reasons(decisions, k=5),
    }
    for name, fig in figs.items():
        axes = fig.axes
        assert axes, name
        assert axes[0].get_title() or axes[0].get_title(loc="left"), name
        assert any(ax.get_xlabel() for ax in axes), name
    assert figs["calibration"].axes[0].get_title().startswith("Calibration (ECE = ")
    assert "Qini coefficient" in figs["qini"].axes[0].get_legend().get_texts()[0].get_text()
    assert len(figs["mix"].axes) == 2   # stacked offers + load panel with capacities
    assert figs["mix"].axes[1].get_ylabel() == "load = offers / capacity"
    assert len(plots.plot_channel_mix(decisions).axes) == 1
    labels = [t.get_text() for t in figs["reasons"].axes[0].get_yticklabels()]
    assert "idle N s on page" in labels


def test_plot_inputs_are_validated(decisions):
    with pytest.raises(ValidationError, match=r"table must be a non-empty DataFrame with columns"):
        plots.plot_policy_values(pd.DataFrame({"value": [1.0]}))
    with pytest.raises(ValidationError, match=r"decisions must have a column 'reasons' and/or 'why_not'"):
        plots.plot_top_reasons(decisions[["session_id", "ts"]])
    with pytest.raises(ValidationError, match=r"p must hold probabilities in \[0, 1\]"):
        plots.plot_calibration([0, 1], [0.5, 1.5])


def test_figures_can_be_made_from_several_threads(decisions, tmp_path):
    errors: list[BaseException] = []

    def work(i):
        try:
            fig = plots.plot_offer_timing(decisions)
            fig.savefig(tmp_path / f"t{i}.png", dpi=60)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    sizes = {(tmp_path / f"t{i}.png").read_bytes() for i in range(3)}
    assert len(sizes) == 1   # same figure, same bytes, whatever the thread


def test_importing_plots_and_report_does_not_import_pyplot():
    import subprocess
    import sys
    code = ("import sys, nextchannel.report, nextchannel.plots; "
            "print('matplotlib.pyplot' in sys.modules, 'matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
