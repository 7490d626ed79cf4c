"""The page served at / until the dashboard is there."""

from __future__ import annotations

HOME_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>User Insights</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem}
code{background:#f3f3f3;padding:.1rem .3rem;border-radius:4px}</style></head>
<body><h1>User Insights</h1>
<p>The API is served under <code>/api/v1</code>; its reference is at
<a href="/api/docs">/api/docs</a>. Every call needs <code>Authorization: Bearer &lt;key&gt;</code>;
create a key with <code>insights keys create --app APP</code> (with <code>--distributed</code>
when the services run separately).</p>
<p>Health: <a href="/healthz">/healthz</a>, <a href="/readyz">/readyz</a>,
<a href="/metrics">/metrics</a>.</p></body></html>
"""
