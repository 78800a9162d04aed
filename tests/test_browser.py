"""The page in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright's Python API).

Signs in as admin, asks about the corpus and sees the highlighted source; uploads an article,
reindexes, finds it cited, deletes it and sees it gone; an article full of HTML/script/remote-image
payloads is indexed and shown inert (no dialog fires, no request reaches the remote host).
Screenshots go to test-output/ (git-ignored).
"""

from __future__ import annotations

import re
import shutil

import pytest

from browser_kit import need_browser  # noqa: E402  (tests/ is on sys.path under pytest)

sync_api = need_browser()

from browser_kit import OUT, ROOT, TIMEOUT, browser, new_page, sign_in  # noqa: E402,F401  (browser: the fixture)
from test_app import make_site  # noqa: E402
NEW_ARTICLE = "青松县政协机关推行“三色预警”工作法\n\n青松县政协机关推行“三色预警”工作法，用红、黄、绿三色标注干部作风问题的轻重，逐项督促整改。\n"
HOSTILE = (
    "白杨镇推行“四议两公开”新做法\n\n"
    "白杨镇党委推行“四议两公开”新做法，<img src=x onerror=alert(1)>要求村级重大事务全程公开。"
    "<script>alert(2)</script>白杨镇还设立了<iframe src=http://example.invalid/f></iframe>群众监督岗。"
    "![x](http://example.invalid/a.png)白杨镇的做法得到群众认可。\n"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = make_site(tmp_path_factory.mktemp("browser"))
    yield s
    s["demo"].close()


@pytest.fixture(scope="module")
def page(site, browser):
    pg = new_page(browser, 1280, 1000)
    pg.remote = []
    pg.on("request", lambda r: pg.remote.append(r.url) if "example.invalid" in r.url else None)
    yield pg
    pg.context.close()


def ask(page, question: str) -> None:
    box = page.locator("#question textarea")
    # 新对话 clears the box when its event returns: a marker in the box shows when that has happened
    # (on a slow machine the clear could otherwise land after the question is typed, or on the answer)
    box.fill("（新对话）")
    page.locator("#new-chat").click()
    page.wait_for_function(
        "() => document.querySelector('#question textarea').value === '' && !document.querySelector('#sources h4')"
    )
    box.fill(question)
    box.press("Enter")
    try:
        page.locator("#sources h4").wait_for(timeout=45_000)
    except sync_api.TimeoutError:
        # a CI run once waited 90 s here with nothing recorded: say what the page showed, and if the
        # question is still in the box with no error shown (the key press was lost), send it once more
        toasts = page.locator(".toast-body").all_inner_texts()
        shown = {"box": box.input_value(), "toasts": toasts, "chat": page.locator("#chatbot").inner_text()[-300:]}
        page.screenshot(path=str(OUT / "ask-timeout.png"))
        print("no sources after 45 s:", shown)
        if shown["box"] != question or toasts:
            raise AssertionError(f"no answer to {question!r}: {shown}") from None
        page.locator("#send").click()
        page.locator("#sources h4").wait_for()


def open_manage(page) -> None:
    page.get_by_role("tab", name="管理").click()
    page.locator("#reindex-btn").wait_for()


def manage_result(page, expect: str) -> str:
    page.wait_for_function(
        "(t) => (document.querySelector('#manage-msg textarea') || {}).value?.includes(t)", arg=expect, timeout=TIMEOUT
    )
    return page.locator("#manage-msg textarea").input_value()


def reindex(page) -> None:
    page.locator("#reindex-btn").click()
    manage_result(page, "索引版本")


def test_chat_upload_reindex_delete_and_inert_html(site, page, tmp_path) -> None:
    OUT.mkdir(exist_ok=True)
    sign_in(page, site, "admin")
    # the tabs a role sees arrive with the sign-in notice but may render a frame later: wait, then check
    page.get_by_role("tab", name="管理").wait_for(timeout=10_000)

    # 1. a corpus question: streamed answer, numbered sources, the quote highlighted
    ask(page, "“一抓双创”的内容是什么？")
    assert "抓党建" in page.locator("#chatbot").inner_text()
    mark = page.locator("#sources mark").first
    mark.wait_for()
    assert mark.inner_text().strip()
    assert "[1]" in page.locator("#sources").inner_text()
    page.locator("#open-article").click()
    page.locator("#article-view mark").wait_for()
    assert "一抓双创" in page.locator("#article-view").inner_text()
    page.screenshot(path=str(OUT / "chat.png"))
    readme_shot = ROOT / "docs" / "screenshot-chat.png"
    if not readme_shot.exists():  # the README's picture; delete it to refresh it (keeps the tree clean)
        readme_shot.parent.mkdir(exist_ok=True)
        shutil.copy(OUT / "chat.png", readme_shot)

    # 2. upload a new article and a hostile one, reindex
    new = tmp_path / "青松县.txt"
    new.write_text(NEW_ARTICLE, encoding="utf-8")
    evil = tmp_path / "白杨镇.md"
    evil.write_text(HOSTILE, encoding="utf-8")
    open_manage(page)
    page.locator("#upload-files input[type=file]").set_input_files([str(new), str(evil)])
    page.wait_for_timeout(1500)
    page.locator("#upload-btn").click()
    assert "青松县.txt" in manage_result(page, "已添加")
    reindex(page)
    assert "青松县" in page.locator("#doc-table").inner_text()
    assert re.search(r"v\d+", page.locator("#index-status").inner_text())
    page.screenshot(path=str(OUT / "admin.png"), full_page=True)

    # 3. the new article is cited
    page.get_by_role("tab", name="问答").click()
    ask(page, "青松县政协机关推行什么工作法？")
    assert "三色预警" in page.locator("#chatbot").inner_text()
    assert "青松县" in page.locator("#sources").inner_text()
    page.screenshot(path=str(OUT / "chat-new-article.png"))

    # 4. the hostile article is shown as inert text
    ask(page, "白杨镇推行什么新做法？")
    page.locator("#open-article").click()
    page.locator("#article-view mark").wait_for()
    page.wait_for_timeout(1000)
    shown = page.locator("#sources").inner_text() + page.locator("#article-view").inner_text()
    assert "<script>alert(2)</script>" in shown  # shown as text
    # the answer quotes some of the article's markup (which sentence is the ranker's choice): as text
    assert re.search(r"<(?:img src=x onerror=alert\(1\)|script|iframe src=http://example\.invalid)", page.locator("#chatbot").inner_text())
    for sel in ("#sources", "#article-view", "#chatbot"):
        assert page.locator(f"{sel} script, {sel} iframe, {sel} img[src='x'], {sel} img[src*='example']").count() == 0
    page.screenshot(path=str(OUT / "chat-hostile.png"))
    assert page.dialogs == []
    assert page.remote == []

    # 5. delete the new article, reindex: it is gone from answers
    open_manage(page)
    pick = page.locator("#doc-pick input")
    pick.fill("青松县.txt")
    pick.press("Enter")
    page.wait_for_timeout(500)
    page.locator("#delete-btn").click()
    manage_result(page, "已删除")
    reindex(page)
    assert "青松县.txt" not in page.locator("#doc-table").inner_text()
    page.get_by_role("tab", name="问答").click()
    ask(page, "青松县政协机关推行什么工作法？")
    assert "青松县" not in page.locator("#sources").inner_text()
    assert page.dialogs == [] and page.remote == []
