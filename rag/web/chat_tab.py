"""The 问答 tab: the chat beside its sources panel (numbered sources, the article view).

The answer bubble holds the answer with its [n] markers and one compact line per cited source
("[n] 标题 › 末级标题"), each a link; the sources panel (beside the chat on a wide screen, under it on
a narrow one) holds the full heading path, the highlighted passage and the article view. A source
link clicked on the page opens the article in the article view at the passage (``open_link``); opened
in a new tab it is the ``/articles`` route, which needs the page's sign-in.

``chat_handlers`` makes the event handlers (each checks the "chat" permission on the server),
``chat_layout`` the components (call inside the tab), ``wire_chat`` joins the two. The answer is
``RagService``'s; what is shown is ``rag/web/render.py``'s.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import gradio as gr

from rag.config import Settings
from rag.errors import RagError
from rag.service import RagService
from rag.web.render import (
    LINK_CLICKS,
    LINK_INPUT,
    SCROLL_TO_MARK,
    answer_links,
    answer_message,
    parse_href,
    plain_history,
    render_article,
    render_sources,
    rendered_history,
    source_refs,
)

logger = logging.getLogger("app")

EXAMPLE_QUESTIONS = [
    "“一抓双创”的内容是什么？",
    "如何加强政协机关党的建设？",
    "模范机关建设有哪些具体举措？",
]
CHAT_MIN_WIDTH, SOURCES_MIN_WIDTH = 480, 360  # side by side from ~880 px of page width, stacked below


def chat_handlers(service: RagService, who) -> SimpleNamespace:
    """respond (streams the answer), open_article, open_link, new_chat and pick_example."""

    def respond(message: str, history: list[dict], request: gr.Request, answered=None):
        user = who(request, "chat")
        history = plain_history(history)
        try:
            q = service.check_question(message)
            stream = service.stream_answer(q, history, user=user.name)
            text, ans = next(stream)
        except RagError as e:  # nothing yielded yet: the message stays in the input box
            logger.info("question failed: %s", e.log_message)
            raise gr.Error(str(e), print_exception=False) from e  # logged by us, not a crash
        # history is plain text from here on; rendered_history() escapes all of it for the page
        history += [{"role": "user", "content": q}, {"role": "assistant", "content": text}]
        yield rendered_history(history), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        for text, ans in stream:
            history[-1] = {"role": "assistant", "content": text}
            if ans is None:
                yield rendered_history(history), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        if ans is None:  # pragma: no cover - stream_answer always ends with the Answer
            return
        history[-1] = {"role": "assistant", "content": answer_message(ans), "links": answer_links(ans)}
        if answered is not None:  # conversations_ui files the turn
            answered(question=q, answer=ans, text=history[-1]["content"], history=history[:-2])
        refs = source_refs(ans)
        yield (
            rendered_history(history),
            "",
            render_sources(ans),
            refs,
            gr.Dropdown(choices=[(r["label"], i) for i, r in enumerate(refs)], value=0 if refs else None),
        )

    def show(source: str, title: str | None, start: int, end: int) -> str:
        """The article view of ``source`` with [start, end) marked (the live index's text)."""
        try:
            index, _, _ = service.current()
        except RagError as e:
            raise gr.Error(str(e), print_exception=False) from e  # logged by us, not a crash
        text = index.document_text(source)
        if not text:
            raise gr.Error("该文章已不在当前索引中（可能已被删除或替换）")
        if not title:  # a link carries no title: the article's metadata, else its passages' title
            meta = (index.documents.get(source) or {}).get("meta") or {}
            title = meta.get("title") or next((c.title for c in index.chunks if c.source == source and c.title), source)
        return render_article(title, text, start, end)

    def open_article(choice, refs, request: gr.Request):
        who(request, "chat")
        if choice is None or not refs or not (0 <= int(choice) < len(refs)):
            raise gr.Error("请先选择一条来源")
        ref = refs[int(choice)]
        return show(ref["source"], ref["title"], ref["start"], ref["end"])

    def open_link(href, request: gr.Request):
        """A source link clicked in a bubble or the panel: its article in the article view."""
        who(request, "chat")
        target = parse_href(href)
        if target is None:
            raise gr.Error("无法打开该来源链接")
        return show(target[0], None, target[1], target[2])

    def new_chat(request: gr.Request):
        who(request, "chat")
        return [], "", "", [], gr.Dropdown(choices=[], value=None), ""

    def pick_example(evt: gr.SelectData, request: gr.Request):
        who(request, "chat")
        value = evt.value
        return value.get("text", "") if isinstance(value, dict) else str(value or "")

    return SimpleNamespace(respond=respond, open_article=open_article, open_link=open_link, new_chat=new_chat,
                           pick_example=pick_example)


def chat_layout(settings: Settings, *, convs=None, feedback=None) -> SimpleNamespace:
    """The tab's components (inside ``gr.Tab("问答")``): the chat column beside the sources column
    (a row that wraps on a narrow screen); ``convs`` and ``feedback`` add the past conversations above
    and 👍/👎 on every answer (rag/web/conversations_ui.py, feedback_ui.py)."""
    if convs is not None:
        convs.panel()
    with gr.Row(elem_id="chat-row", equal_height=False):
        with gr.Column(scale=3, min_width=CHAT_MIN_WIDTH, elem_id="chat-col"):
            chatbot = gr.Chatbot(
                label="对话",
                height=480,
                render_markdown=False,  # answers are plain text: no markdown images; the source lines are our links
                sanitize_html=True,
                placeholder="请输入关于党建资料的问题，回答均出自资料原文并注明来源。",
                examples=[{"text": q} for q in EXAMPLE_QUESTIONS],
                feedback_options=feedback.OPTIONS if feedback is not None else None,
                elem_id="chatbot",
            )
            with gr.Row():
                msg = gr.Textbox(
                    placeholder="输入问题，按回车发送",
                    show_label=False,
                    scale=8,
                    max_length=max(settings.max_question_chars * 4, 2000),
                    elem_id="question",
                )
                send = gr.Button("发送", variant="primary", scale=1, min_width=80, elem_id="send")
                clear = gr.Button("新对话", scale=1, min_width=80, elem_id="new-chat")
            if feedback is not None and convs is not None:
                feedback.panel(convs.state, chatbot)
        with gr.Column(scale=2, min_width=SOURCES_MIN_WIDTH, elem_id="sources-col"):
            sources = gr.HTML("", elem_id="sources")
            refs = gr.State([])
            with gr.Row():
                pick = gr.Dropdown(label="查看来源全文", choices=[], scale=4, elem_id="pick-source")
                open_btn = gr.Button("查看全文", scale=1, elem_id="open-article")
            article = gr.HTML("", elem_id="article-view")
            # what a clicked source link sends (render.LINK_CLICKS): in the page, never shown
            link = gr.Textbox(visible="hidden", elem_id="link-href")
            link_btn = gr.Button("打开来源", visible="hidden", elem_id="open-link")
    return SimpleNamespace(chatbot=chatbot, msg=msg, send=send, clear=clear, sources=sources, refs=refs, pick=pick,
                           open_btn=open_btn, article=article, link=link, link_btn=link_btn)


def wire_chat(c: SimpleNamespace, h: SimpleNamespace, *, demo=None, convs=None) -> None:
    """The tab's events (inside the Blocks, after the layout); with ``convs`` every turn is filed
    under the tab's conversation."""
    chat_out = [c.chatbot, c.msg, c.sources, c.refs, c.pick]
    if convs is not None:
        ask = convs.asking(h.respond)
        c.msg.submit(ask, [c.msg, c.chatbot, convs.state], chat_out + convs.outputs, api_name="ask")
        c.send.click(ask, [c.msg, c.chatbot, convs.state], chat_out + convs.outputs, api_name=False)
    else:
        c.msg.submit(h.respond, [c.msg, c.chatbot], chat_out, api_name="ask")
        c.send.click(h.respond, [c.msg, c.chatbot], chat_out, api_name=False)
    c.chatbot.example_select(h.pick_example, None, c.msg, api_name=False)
    c.clear.click(h.new_chat, None, [c.chatbot, c.msg, c.sources, c.refs, c.pick, c.article], api_name="new_chat")
    if convs is not None:
        convs.wire(demo, chatbot=c.chatbot, msg=c.msg, sources=c.sources, refs=c.refs, pick=c.pick, article=c.article,
                   new_chat=h.new_chat, new_button=c.clear)
    c.open_btn.click(h.open_article, [c.pick, c.refs], c.article, api_name="open_article").then(
        None, None, None, js=SCROLL_TO_MARK
    )
    c.link_btn.click(h.open_link, [c.link], c.article, js=LINK_INPUT, api_name="open_link").then(
        None, None, None, js=SCROLL_TO_MARK
    )
    if demo is not None:
        demo.load(None, None, None, js=LINK_CLICKS)  # source links open the article view
