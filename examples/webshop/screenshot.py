"""Take the README's screenshot of an offer: a visitor hesitating on the example shop's checkout.

    .venv/bin/python examples/webshop/screenshot.py            # writes examples/webshop/offer.png

Starts `nextchannel serve` for the shop on a free loopback port, drives headless Chromium
(Playwright, the system's /usr/bin/chromium) on a fake clock, and saves the page once the offer
is shown.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
server = subprocess.Popen([sys.executable, "-m", "nextchannel.cli", "serve", "--port", str(port), "--static-dir",
                           str(HERE), "--context", str(HERE / "context.json")])
base = f"http://127.0.0.1:{port}"
try:
    for _ in range(300):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_context(locale="en-GB", viewport={"width": 1000, "height": 560}).new_page()
        page.clock.install(time=1_767_261_600)
        steps = [("goto", "/product.html"), ("click", "#consent-yes"), ("click", "#add-lamp"), ("goto", "/cart.html"),
                 ("goto", "/checkout.html"), ("click", "#pay"), ("goto", "/cart.html"), ("goto", "/checkout.html")]
        for what, arg in steps:
            page.goto(base + arg) if what == "goto" else page.click(arg)
            page.clock.run_for(6000)
            page.wait_for_timeout(150)
        for _ in range(12):
            if page.query_selector(".nc-offer"):
                break
            page.clock.run_for(10000)
            page.wait_for_timeout(200)
        page.screenshot(path=str(HERE / "offer.png"))
        print("offer shown:", bool(page.query_selector(".nc-offer")), "->", HERE / "offer.png")
        browser.close()
finally:
    server.terminate()
    server.wait(20)
