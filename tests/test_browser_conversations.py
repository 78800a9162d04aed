"""Past conversations and 👎 in a real headless Chromium (Debian's /usr/bin/chromium, Playwright).

A cadre asks a question, reloads the page, reopens the conversation from the side list and sees
it, asks a follow-up under it, and gives 👎 with a reason and a note; an admin then finds that
answer, its reason and note in 待改进的问题. Screenshots go to test-output/ (git-ignored).
"""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium fonts-noto-cjk)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")

from test_app import make_site  # noqa: E402  (tests/ is on sys.path under pytest)
from test_browser import ARGS, OUT, TIMEOUT  # noqa: E402

QUESTION = "“一抓双创”的内容是什么？"
NOTE = "<b>第二条</b>出处不对"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = make_site(tmp_path_factory.mktemp("browser-conv"))
    yield s
    s["demo"].close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


def new_page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN")
    pg = ctx.new_page()
    pg.set_default_timeout(TIMEOUT)
    pg.dialogs = []
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    return pg


def sign_in(page, site, who: str) -> None:
    page.goto(site["url"])
    page.locator("input[type=text], input[name=username]").first.fill(who)
    page.locator("input[type=password]").first.fill(site["pw"][who])
    page.locator("input[type=password]").first.press("Enter")
    page.locator("#question textarea").wait_for()
    page.get_by_text("已登录").wait_for()


def ask(page, question: str) -> None:
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")
    page.locator("#sources h4").wait_for()


def test_reopen_after_reload_and_thumbs_down_reaches_admin(site, browser) -> None:
    OUT.mkdir(exist_ok=True)
    page = new_page(browser)
    sign_in(page, site, "cadre")
    ask(page, QUESTION)
    answer = page.locator("#chatbot").inner_text()
    assert "抓党建" in answer
    page.locator("#conv-list label", has_text="一抓双创").wait_for()

    # reload: the chat is empty, the list still holds the conversation; reopen it
    page.reload()
    page.locator("#question textarea").wait_for()
    entry = page.locator("#conv-list label", has_text="一抓双创")
    entry.wait_for()
    assert "抓党建" not in page.locator("#chatbot").inner_text()
    entry.click()
    page.wait_for_function("() => document.querySelector('#chatbot').innerText.includes('抓党建')")
    shown = page.locator("#chatbot").inner_text()
    assert QUESTION in shown and "来源" in shown
    page.screenshot(path=str(OUT / "conversation-reopened.png"))

    # continue it: the follow-up is filed under the same conversation (one entry in the list)
    ask(page, "它的主要做法有哪些？")  # reopening cleared the sources: this waits for the new answer
    assert QUESTION in page.locator("#chatbot").inner_text()
    assert page.locator("#conv-list label").count() == 1

    # 👎 with a reason and a note on the last answer
    page.locator("#fb-reason label", has_text="引用不对").click()
    page.locator("#fb-note textarea").fill(NOTE)
    page.locator("#fb-down").click()
    page.get_by_text("已记录您的评价").wait_for()
    assert "引用不对" in page.locator("#fb-status").inner_text()
    assert page.dialogs == []

    # the admin sees it in 待改进的问题 (the note as text, not markup)
    admin = new_page(browser)
    sign_in(admin, site, "admin")
    admin.get_by_role("tab", name="管理").click()
    admin.locator("#nw-refresh").click()
    admin.wait_for_function("() => (document.querySelector('#nw-view') || {}).innerText?.includes('引用不对')")
    view = admin.locator("#nw-view").inner_text()
    assert "它的主要做法有哪些？" in view and NOTE in view and "👎" in view
    assert admin.locator("#nw-view b", has_text="第二条").count() == 0  # escaped: shown, not rendered
    assert admin.locator("#nw-view svg rect.bar").count() >= 1
    admin.screenshot(path=str(OUT / "needs-work.png"), full_page=True)
    # the cadre has no 管理 tab and the admin has no conversation of the cadre's
    assert not page.get_by_role("tab", name="管理").is_visible()
    assert admin.locator("#conv-list label", has_text="一抓双创").count() == 0
