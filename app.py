"""党建知识问答: the web entry point. ``python app.py`` (or ``./run.sh``): settings -> RagService -> web server.

The page is ``rag/web/page.py`` (Gradio tabs), the server ``rag/web/server.py`` (FastAPI: the page at
``/``, the API at ``/v1`` and ``/api/v1``); this file only wires them together.
"""

from __future__ import annotations

import logging
import os
import sys

from rag.config import Settings
from rag.errors import RagError
from rag.index.documents import DocumentManager
from rag.service import RagService
from rag.auth.users import UserStore
from rag.web.page import build_app, serve

logger = logging.getLogger("app")


def main() -> None:
    os.umask(0o077)  # data, index, exports and the database's WAL: this account's only
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        users = UserStore.open(settings)  # the database: a users.json of an older version is migrated here
        password = users.ensure_first_admin()
        if password:
            print("=" * 60)
            print("首次启动：已创建管理员账号 admin")
            print(f"初始密码：{password}")
            print("该密码只显示这一次，请妥善保存；可用 python -m rag users reset admin 重置。")
            print("=" * 60, flush=True)
        service = RagService(settings)

        last = {"what": None, "pct": -10}

        def progress(done: int, total: int, what: str) -> None:
            pct = 100 * done // max(total, 1)
            if what != last["what"] or pct >= last["pct"] + 10 or done == total:  # ~every 10 %
                last.update(what=what, pct=pct)
                logger.info("建立索引：%s %d/%d（%d%%）", what, done, total, pct)

        report = service.ensure_index(progress=progress)
        if report is not None:
            logger.info("%s", report.summary())
        service.current()  # load the engine once, before the first user waits for it
        docs = DocumentManager(settings)
        demo = build_app(service, settings, users, docs)
    except RagError as e:
        print(f"错误：{e}", file=sys.stderr)
        sys.exit(1)
    logger.info("serving on http://%s:%d (page at /, API at /v1 and /api/v1)", settings.host, settings.port)
    serve(demo, service, settings, users, docs)


if __name__ == "__main__":
    main()
