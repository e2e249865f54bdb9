"""The dashboard and the read API: a Starlette app (`okrsync.web.app.create_app`) served by
uvicorn (`okrsync.web.server`) in the daemon or by `okrsync web`. See docs/web.md."""
