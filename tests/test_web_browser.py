"""Real browser: headless Chromium (Playwright) clicks through the example shop served by `nextchannel serve`.

The page's clock is Playwright's fake clock, so a minute of hesitation takes no real minute: the
tracker's timestamps, idle detection and batching all run on it.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from _web_support import free_port, start_server, stop, wait_for_port
from nextchannel.web.logs import read_logs

SHOP = Path(__file__).resolve().parents[1] / "examples" / "webshop"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
T0 = 1_767_261_600  # a Thursday, 10:00 UTC: the chat is open in the shop's context


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    logs = tmp_path_factory.mktemp("shop-logs")
    port = free_port()
    proc = start_server(port, ["--static-dir", str(SHOP), "--context", str(SHOP / "context.json"),
                               "--log-dir", str(logs)], logs / "server.out")
    try:
        wait_for_port(port, proc, timeout_s=90)
        yield f"http://127.0.0.1:{port}", logs
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _page(browser, locale="de-DE"):
    ctx = browser.new_context(locale=locale, viewport={"width": 1200, "height": 800}, timezone_id="UTC")
    page = ctx.new_page()
    page.clock.install(time=T0)
    return page


def _sid(page):
    return page.evaluate("nextchannel.sessionId()")


def _wait(page, seconds):
    page.clock.run_for(int(seconds * 1000))
    page.wait_for_timeout(150)  # real time for the fetch round trip


def _session(logs, sid):
    f = read_logs(logs)
    ev = f.events[f.events["session_id"] == sid].reset_index(drop=True)
    dec = f.decisions[f.decisions["session_id"] == sid].reset_index(drop=True)
    out = f.outcomes[f.outcomes["decision_id"].isin(dec["decision_id"])] if len(f.outcomes) else f.outcomes
    return ev, dec, out


def _hesitate(page, base):
    """Product, cart, checkout with failing forms, back to the cart and again, then idle."""
    page.goto(base + "/product.html")
    page.click("#consent-yes")
    _wait(page, 4)
    page.click("#add-lamp")
    _wait(page, 3)
    page.goto(base + "/cart.html")
    _wait(page, 5)
    page.goto(base + "/checkout.html")
    _wait(page, 8)
    page.click("#pay")                      # empty: three invalid fields
    _wait(page, 6)
    page.fill("input[name=email]", "someone@example.com")
    page.fill("input[name=zip]", "12")
    page.click("#pay")                      # postcode and card still invalid
    _wait(page, 6)
    page.goto(base + "/cart.html")
    _wait(page, 4)
    page.goto(base + "/checkout.html")
    for _ in range(8):                      # idle on the checkout, up to 80 s
        _wait(page, 10)
        if page.query_selector(".nc-offer"):
            return True
    return False


EXPECTED_HESITATION = [
    ("session_start", None), ("page_view", "product"), ("click", None), ("click", None), ("cart_add", 45.0),
    ("page_view", "cart"), ("page_view", "checkout"), ("click", None), ("form_error", "email"),
    ("form_error", "zip"), ("form_error", "card"), ("click", None), ("form_error", "zip"), ("form_error", "card"),
    ("page_view", "cart"), ("page_view", "checkout"),
]


def _key(e):
    t = e["type"]
    v = {"page_view": e.get("page_type"), "cart_add": e.get("value"), "form_error": e.get("field"),
         "purchase": e.get("value"), "offer_shown": e.get("channel"), "offer_dismissed": e.get("channel"),
         "offer_accepted": e.get("channel")}.get(t)
    return t, v


def test_hesitating_visitor_is_offered_help_and_dismissing_is_logged(shop, browser):
    base, logs = shop
    page = _page(browser)
    assert _hesitate(page, base), "no offer appeared after a minute of hesitation on the checkout"
    sid = _sid(page)
    widget = page.query_selector(".nc-offer")
    channel = widget.get_attribute("data-nc-channel")
    assert widget.get_attribute("role") == "dialog" and widget.get_attribute("lang") == "de"
    assert channel != "phone"                                    # closed in the shop's context
    assert page.inner_text(".nc-dismiss") == "Nein, danke"        # the server's text in German
    page.click(".nc-dismiss")
    _wait(page, 1)
    assert page.query_selector(".nc-offer") is None
    ev, dec, out = _session(logs, sid)
    # the events the server logged are exactly the actions performed (idle periods aside)
    keys = [_key(e) for e in ev.to_dict("records") if e["type"] != "idle"]
    assert keys == EXPECTED_HESITATION + [("offer_shown", channel), ("click", None), ("offer_dismissed", channel)], keys
    idle = ev[ev["type"] == "idle"]
    assert len(idle) >= 1 and (idle["duration_s"] >= 1).all()
    offers = dec[dec["action"] != "none"]
    assert len(offers) >= 1 and offers["action"].iloc[-1] == channel
    assert not ev.loc[ev["type"] == "form_error", "field"].str.contains("@").any()
    shown = out[out["outcome"] == "shown"]
    assert set(out["outcome"]) == {"shown", "dismissed"} and shown["decision_id"].iloc[0] in set(offers["decision_id"])
    f = read_logs(logs).decisions.set_index("decision_id")
    assert f.loc[shown["decision_id"].iloc[0], "dismissed"]


def test_accepting_an_offer_is_logged_as_an_outcome(shop, browser):
    base, logs = shop
    page = _page(browser, locale="en-GB")
    assert _hesitate(page, base)
    sid = _sid(page)
    channel = page.get_attribute(".nc-offer", "data-nc-channel")
    assert page.inner_text(".nc-dismiss") == "No thanks"
    page.click(".nc-accept")
    _wait(page, 1)
    time.sleep(0.3)  # an accepted link may navigate: the outcome then leaves by sendBeacon
    ev, dec, out = _session(logs, sid)
    assert "accepted" in set(out["outcome"]) and ("offer_accepted", channel) in [_key(e) for e in ev.to_dict("records")]
    did = out.loc[out["outcome"] == "accepted", "decision_id"].iloc[0]
    assert read_logs(logs).decisions.set_index("decision_id").loc[did, "accepted"]


def test_decisive_visitor_is_offered_nothing(shop, browser):
    base, logs = shop
    page = _page(browser)
    page.goto(base + "/")
    page.click("#consent-yes")
    _wait(page, 2)
    page.goto(base + "/product.html")
    _wait(page, 2)
    page.click("#add-kettle")
    _wait(page, 1)
    page.goto(base + "/checkout.html")
    _wait(page, 2)
    page.fill("input[name=email]", "someone@example.com")
    page.fill("input[name=zip]", "12345")
    page.fill("input[name=card]", "4111 1111 1111 1111")
    page.click("#pay")
    _wait(page, 2)
    assert page.inner_text("#done") == "Thank you for your order."
    assert page.query_selector(".nc-offer") is None
    ev, dec, out = _session(logs, _sid(page))
    assert [_key(e) for e in ev.to_dict("records")] == [
        ("session_start", None), ("page_view", "home"), ("click", None), ("page_view", "product"), ("click", None),
        ("cart_add", 30.0), ("page_view", "checkout"), ("click", None), ("form_submit", None), ("purchase", 30.0)]
    assert len(dec) >= 4 and (dec["action"] == "none").all() and len(out) == 0


def test_nothing_is_sent_without_consent(shop, browser):
    base, logs = shop
    page = _page(browser)
    page.goto(base + "/product.html")
    page.click("#consent-no")
    page.click("#add-kettle")
    _wait(page, 5)
    ev, dec, _ = _session(logs, _sid(page))
    assert len(ev) == 0 and len(dec) == 0


def test_scroll_direction_changes_and_exit_intent_are_tracked(shop, browser):
    base, logs = shop
    page = _page(browser)
    page.goto(base + "/help.html")
    page.click("#consent-yes")
    page.add_style_tag(content="main { min-height: 4000px; }")
    page.mouse.move(300, 300)
    page.mouse.wheel(0, 1500)
    _wait(page, 1)
    page.mouse.wheel(0, -700)
    _wait(page, 1)
    # the pointer leaving through the top edge (what a desktop browser fires when heading for the tabs)
    page.evaluate("document.dispatchEvent(new MouseEvent('mouseout', {clientY: -2, bubbles: true}))")
    _wait(page, 1)
    ev, _, _ = _session(logs, _sid(page))
    scrolls = ev[ev["type"] == "scroll"]
    assert list(scrolls["direction"])[:1] == ["down"] and "up" in set(scrolls["direction"])
    assert scrolls["depth"].between(0, 1).all()
    assert (ev["type"] == "exit_intent").sum() == 1


def test_search_cart_removal_and_aria_invalid_are_tracked_without_free_text(shop, browser):
    base, logs = shop
    page = _page(browser)
    page.goto(base + "/")
    page.click("#consent-yes")
    page.fill("input[name=q]", "zebra")
    page.press("input[name=q]", "Enter")
    _wait(page, 1)
    page.goto(base + "/product.html")
    page.click("#add-kettle")
    _wait(page, 1)
    page.goto(base + "/cart.html")
    page.click(".remove")
    _wait(page, 1)
    page.goto(base + "/checkout.html")
    page.fill("input[name=email]", "someone@example.com")
    page.fill("input[name=zip]", "12345")
    page.fill("input[name=card]", "123")        # passes the browser's check, fails the shop's (aria-invalid)
    page.click("#pay")
    _wait(page, 2)
    ev, _, _ = _session(logs, _sid(page))
    recs = ev.to_dict("records")
    assert [_key(e) for e in recs] == [
        # Enter in the search box "clicks" the form's button and submits it, as browsers do
        ("session_start", None), ("page_view", "home"), ("click", None), ("click", None), ("form_submit", None),
        ("search", None), ("page_view", "product"),
        ("click", None), ("cart_add", 30.0), ("page_view", "cart"), ("click", None), ("cart_remove", None),
        ("page_view", "checkout"), ("click", None), ("form_submit", None), ("form_error", "card")]
    assert recs[5]["n_results"] == 0 and recs[11]["value"] == 30.0
    text = "".join(p.read_text() for p in (logs / "events").glob("*.jsonl"))
    assert "zebra" not in text and "someone@example.com" not in text
