"""What the real-browser tests share: Debian's Chromium through Playwright, a page with its dialogs
recorded, and the sign-in through the page's own form.

A test module calls ``sync_api = need_browser()`` before anything else (it skips the module with the
reason when Chromium or Playwright is missing) and imports the ``browser`` fixture from here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "test-output"  # screenshots (git-ignored)
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT = 90_000


def need_browser():
    """playwright.sync_api, or skip the calling module with the reason."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium fonts-noto-cjk)",
                    allow_module_level=True)
    return pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")


@pytest.fixture(scope="module")
def browser():
    sync_api = need_browser()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


def new_page(browser, width: int = 1400, height: int = 1000, **context):
    """A page in a fresh context (no cookies); ``page.dialogs`` collects any dialog (all are dismissed)."""
    ctx = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN", **context)
    pg = ctx.new_page()
    pg.set_default_timeout(TIMEOUT)
    pg.dialogs = []
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    return pg


def sign_in(page, site: dict, who: str) -> None:
    """Sign in as ``who`` (password ``site["pw"][who]``) at ``site["url"]`` and wait for the chat."""
    page.goto(site["url"])
    page.locator("input[type=text], input[name=username]").first.fill(who)
    page.locator("input[type=password]").first.fill(site["pw"][who])
    page.locator("input[type=password]").first.press("Enter")
    page.locator("#question textarea").wait_for()
    page.get_by_text("已登录").wait_for()
