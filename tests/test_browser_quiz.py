"""The 测验 tab in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

A trainer signs in, generates a topic quiz, edits one item, accepts it, exports the accepted items
as Word and Excel, downloads both files and reads them back (python-docx, openpyxl). A 干部 (cadre)
user does not see the tab, and the quiz API refuses the cadre's signed-in browser session.
Screenshots go to test-output/; docs/screenshot-quiz.png (README) is written when missing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from browser_kit import need_browser  # noqa: E402  (tests/ is on sys.path under pytest)

sync_api = need_browser()

from browser_kit import OUT, ROOT, TIMEOUT, browser, sign_in  # noqa: E402,F401  (browser: the fixture)
from browser_kit import new_page as kit_page  # noqa: E402
from test_app import make_site  # noqa: E402
from rag.db.audit import read_audit  # noqa: E402
from rag.quiz.bank import QuestionBank  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = make_site(tmp_path_factory.mktemp("browser_quiz"))
    yield s
    s["demo"].close()


def new_page(browser):
    return kit_page(browser, 1280, 1100, accept_downloads=True)


def wait_msg(page, expect: str) -> str:
    page.wait_for_function(
        "(t) => (document.querySelector('#quiz-msg textarea') || {}).value?.includes(t)", arg=expect, timeout=TIMEOUT
    )
    return page.locator("#quiz-msg textarea").input_value()


def download_export(page, fmt: str, tmp_path: Path) -> Path:
    """Pick the format, export, and download the file the page offers."""
    page.locator("#quiz-format").get_by_text(fmt, exact=True).click()
    before = page.locator("#quiz-file a").count()
    page.locator("#quiz-export").click()
    wait_msg(page, f"（{fmt}）")
    link = page.locator("#quiz-file a[download], #quiz-file a").last
    link.wait_for()
    assert page.locator("#quiz-file a").count() >= max(before, 1)
    with page.expect_download() as dl:
        link.click()
    target = tmp_path / dl.value.suggested_filename
    dl.value.save_as(str(target))
    return target


def test_trainer_generates_edits_accepts_exports_and_downloads(site, browser, tmp_path) -> None:
    from docx import Document
    from openpyxl import load_workbook

    OUT.mkdir(exist_ok=True)
    page = new_page(browser)
    sign_in(page, site, "trainer")
    page.get_by_role("tab", name="测验").wait_for(timeout=10_000)  # same update as the 管理 tab's visibility
    assert not page.get_by_role("tab", name="管理").is_visible()
    page.get_by_role("tab", name="测验").click()
    page.locator("#quiz-generate").wait_for()

    # generate a topic quiz of 5 items
    page.locator("#quiz-topic textarea, #quiz-topic input").first.fill("模范机关建设")
    n_box = page.locator("#quiz-n input[type=number]")
    n_box.fill("5")
    n_box.press("Enter")
    page.locator("#quiz-generate").click()
    wait_msg(page, "已生成")
    cards = page.locator("#quiz-items .qz")
    assert 1 <= cards.count() <= 5
    assert "出处" in cards.first.inner_text()

    # edit the first item's stem (the editor shows the first item after generating), save, accept
    stem_box = page.locator("#quiz-stem textarea")
    page.wait_for_function("() => (document.querySelector('#quiz-stem textarea') || {}).value?.length > 0")
    edited = stem_box.input_value() + "（培训班修订）"
    stem_box.fill(edited)
    page.locator("#quiz-save").click()
    wait_msg(page, "第 1 题已修改")
    assert "培训班修订" in cards.first.inner_text()
    page.locator("#quiz-accept").click()
    wait_msg(page, "已采用并存入题库")
    assert "已采用" in page.locator("#quiz-items .qz").first.inner_text()
    page.get_by_text("题库中现有 1 题").wait_for()
    page.locator("#quiz-scope").scroll_into_view_if_needed()
    page.evaluate("() => window.scrollTo(0, 0)")
    page.wait_for_timeout(300)
    page.screenshot(path=str(OUT / "quiz.png"), full_page=False)
    readme_shot = ROOT / "docs" / "screenshot-quiz.png"
    if not readme_shot.exists():  # the README's picture; delete it to refresh it (keeps the tree clean)
        readme_shot.parent.mkdir(exist_ok=True)
        shutil.copy(OUT / "quiz.png", readme_shot)

    # the bank (in the database) holds the edited item
    assert [i.stem for i in QuestionBank.for_settings(site["settings"]).load()] == [edited]

    # export and download: Word, then Excel; read both back
    docx_path = download_export(page, "Word", tmp_path)
    assert docx_path.suffix == ".docx"
    text = "\n".join(p.text for p in Document(str(docx_path)).paragraphs)
    assert edited in text and "参考答案与解析" in text
    xlsx_path = download_export(page, "Excel", tmp_path)
    rows = list(load_workbook(str(xlsx_path)).active.iter_rows(values_only=True))
    assert rows[0][:2] == ("题型", "题干") and [r[1] for r in rows[1:]] == [edited]
    page.screenshot(path=str(OUT / "quiz-export.png"), full_page=True)
    assert page.dialogs == []
    page.context.close()


def test_cadre_neither_sees_nor_uses_the_quiz_tab(site, browser) -> None:
    page = new_page(browser)
    sign_in(page, site, "cadre")
    page.wait_for_timeout(500)
    tab = page.get_by_role("tab", name="测验")
    assert tab.count() == 0 or not tab.is_visible()
    assert not page.locator("#quiz-generate").is_visible()
    # the signed-in cadre's browser calls the quiz API directly: the server refuses
    reply = page.evaluate(
        """async () => {
            const r = await fetch('gradio_api/call/quiz_generate', {method: 'POST',
                headers: {'Content-Type': 'application/json'},
                body: JSON.stringify({data: ['按主题', '模范机关建设', null, 3, ['单选']]})});
            if (!r.ok) return 'HTTP ' + r.status;
            const {event_id} = await r.json();
            const s = await fetch('gradio_api/call/quiz_generate/' + event_id);
            return await s.text();
        }"""
    )
    assert reply.startswith("event: error"), reply
    data = json.loads(reply.split("data:", 1)[1])
    assert "无权" in data["error"], data
    assert len(QuestionBank.for_settings(site["settings"])) == 0 or "cadre" not in {
        e.get("user") for e in read_audit(site["settings"]) if e.get("action") == "quiz_accept"}
    page.context.close()
