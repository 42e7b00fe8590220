"""Screenshot of the web console on the real model (docs/console.png): the server in this process,
headless Chromium (Debian's) through Playwright; sentiment-vec at +6 on layer 11."""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import torch
import uvicorn
from playwright.sync_api import sync_playwright

from steerlab.models.loading import load_model
from steerlab.server import ServerConfig, create_app


def main(out: Path) -> None:
    torch.set_num_threads(1)
    lm = load_model("smollm2-135m")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(lm, config=ServerConfig()), host="127.0.0.1", port=port,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        page.fill("#prompt", "The hotel we stayed at last weekend was")
        page.fill("#max_tokens", "40")
        page.click("#run")
        page.wait_for_function("document.getElementById('base').dataset.done", timeout=120_000)
        stamp = page.get_attribute("#steered", "data-done") or ""
        page.eval_on_selector("#strength-sentiment-vec", "el => { el.value = 6; "
                                                         "el.dispatchEvent(new Event('input', {bubbles: true})); }")
        page.wait_for_function(f"document.getElementById('steered').dataset.done !== '{stamp}'", timeout=120_000)
        page.screenshot(path=str(out), full_page=True)
        print(page.inner_text("#base"), "||", page.inner_text("#steered"))
        browser.close()
    server.should_exit = True


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/console.png"))
