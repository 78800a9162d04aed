"""API keys in the 管理 tab, through the page's own handlers (``rag/web/keys_ui.py``).

The page is built over the mini corpus as in tests/test_conversations_ui.py; the keys land in the same
database ``python -m rag keys`` uses (``ApiKeyStore``), checked through a second connection and with
``ApiKeyStore.verify`` (what the API's bearer check calls). Nothing of ours is mocked.
"""

from __future__ import annotations

import pytest

gr = pytest.importorskip("gradio")

from test_conversations_ui import _db, req, site  # noqa: E402,F401  (the module's page fixture)

from rag.db.audit import read_audit  # noqa: E402
from rag.db.keys import ApiKeyStore  # noqa: E402


def keys(site) -> ApiKeyStore:
    return ApiKeyStore(_db(site))


def test_admin_lists_creates_once_and_revokes(site) -> None:
    fns = site["fns"]
    cli_info, cli_key = keys(site).add("trainer", "from the CLI")  # what `python -m rag keys add trainer` makes
    key_box, msg, table, people, active = fns["keys_list"](req("admin"))
    assert key_box == "" and msg == ""
    assert f"data-key-id='{cli_info.id}'" in table and cli_info.prefix in table and cli_key not in table
    assert [v for _, v in people.choices] == ["admin", "cadre", "trainer"]
    assert cli_info.id in [v for _, v in active.choices]

    key, msg, table, people, active = fns["keys_add"]("cadre", "  <b>脚本</b>  用 ", req("admin"))
    info = keys(site).verify(key)  # the key works: the API's bearer check finds it, as the cadre's
    assert key.startswith("rag-") and info is not None and info.user == "cadre" and info.label == "<b>脚本</b> 用"
    assert f"#{info.id}" in msg and "只显示这一次" in msg and key not in msg
    row = table.split(f"data-key-id='{info.id}'")[1].split("</tr>")[0]
    assert "&lt;b&gt;脚本&lt;/b&gt; 用" in row and "<b>" not in row and info.prefix in row and key not in table
    assert "有效" in row and "从未使用" in row
    assert info.id in [v for _, v in active.choices]
    # never shown again: the list, a refresh, the next action show the prefix only
    again = fns["keys_list"](req("admin"))
    assert again[0] == "" and key not in str(again[2])

    key_box, msg, table, _, active = fns["keys_revoke"](info.id, req("admin"))
    assert key_box == "" and "已吊销" in msg and info.prefix in msg
    assert keys(site).verify(key) is None  # the API refuses it from now on
    assert "已吊销" in table.split(f"data-key-id='{info.id}'")[1].split("</tr>")[0]
    assert info.id not in [v for _, v in active.choices] and cli_info.id in [v for _, v in active.choices]
    assert keys(site).verify(cli_key) is not None  # the other key is untouched

    log = [e for e in read_audit(site["settings"].data_dir) if e.get("action", "").startswith("key_")]
    assert [(e["action"], e["for"], e["key_id"]) for e in log[-2:]] == [("key_add", "cadre", info.id),
                                                                        ("key_revoke", "cadre", info.id)]
    assert key not in str(log)

    with pytest.raises(gr.Error, match="选择一位"):
        fns["keys_add"]("nobody", "", req("admin"))
    with pytest.raises(gr.Error, match="选择一位"):
        fns["keys_add"](None, "", req("admin"))
    with pytest.raises(gr.Error, match="100"):
        fns["keys_add"]("cadre", "长" * 101, req("admin"))
    with pytest.raises(gr.Error, match="找不到"):
        fns["keys_revoke"](10**6, req("admin"))
    with pytest.raises(gr.Error, match="选择"):
        fns["keys_revoke"](None, req("admin"))


def test_cadres_and_trainers_can_neither_see_nor_make_nor_revoke_keys(site) -> None:
    fns = site["fns"]
    info, key = keys(site).add("admin", "the admin's")
    count = len(keys(site).list())
    for who in ("cadre", "trainer"):
        with pytest.raises(gr.Error, match="无权"):
            fns["keys_list"](req(who))
        with pytest.raises(gr.Error, match="无权"):
            fns["keys_add"](who, "mine", req(who))
        with pytest.raises(gr.Error, match="无权"):
            fns["keys_revoke"](info.id, req(who))
    assert len(keys(site).list()) == count and keys(site).verify(key) is not None
    # the page's load handler fills the section for admins only
    load = next(f.fn for f in site["demo"].fns.values() if getattr(f.fn, "__name__", "") == "load_keys")
    table, people, active = load(req("cadre"))
    assert table == "" and people.choices == [] and active.choices == []
    table, people, active = load(req("admin"))
    assert f"data-key-id='{info.id}'" in table and info.id in [v for _, v in active.choices]
