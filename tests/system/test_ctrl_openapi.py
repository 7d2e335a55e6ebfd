# test_ctrl_openapi.py: docs/openapi.yaml against pv-ctrl: every route of the router is in the
# document, every documented path/method answers with a documented status and content type.
import hashlib
import os
import re
import subprocess

import pytest
import yaml

from test_ctrl_api import CTRL, ENGINE, CtrlEnv, wait_for

PV_SRC = os.environ.get("PV_SRC", os.path.join(os.path.dirname(__file__), "../.."))
DOC = os.path.join(PV_SRC, "docs", "openapi.yaml")


def doc():
    with open(DOC) as f:
        return yaml.safe_load(f)


def doc_ops():
    ops = []
    for path, item in doc()["paths"].items():
        for m, op in item.items():
            if m in ("get", "put", "post", "delete"):
                ops.append((m.upper(), path, op))
    return ops


@pytest.mark.skipif(not os.path.exists(CTRL), reason="pv-ctrl not built")
def test_router_and_document_agree():
    out = subprocess.run([CTRL, "--list-routes"], capture_output=True, text=True, check=True)
    routes = set()
    for line in out.stdout.splitlines():
        method, pattern, role, limit = line.split()
        routes.add((method, pattern, role))
    documented = {(m, re.sub(r"\{[^}]+\}", "{}", p), op["x-role"]) for m, p, op in doc_ops()}
    assert routes - documented == set(), "routes missing from docs/openapi.yaml"
    assert documented - routes == set(), "documented routes the server does not have"
    for m, p, op in doc_ops():
        assert "403" in op["responses"] or op["x-role"] == "any", (m, p)
        for code, r in op["responses"].items():
            if int(code) >= 400:
                ref = r["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/Error")


@pytest.fixture(scope="module")
def env():
    if os.geteuid() != 0 or not os.path.exists(ENGINE):
        pytest.skip("needs root and pv-engine")
    e = CtrlEnv()
    try:
        c = e.container("oa", restart_policy="container")
        e.write_rev("0", c)
        e.cname = c[0]
        e.start_ctrl()
        e.start_engine()
        assert wait_for(lambda: e.lxc_state(e.cname) == "RUNNING", 30), e.log_text()
        yield e
    finally:
        e.cleanup()


def sample_path(env, path):
    obj = os.path.join(env.root, "oa-obj")
    with open(obj, "wb") as f:
        f.write(b"openapi object\n")
    sha = hashlib.sha256(b"openapi object\n").hexdigest()
    return (path.replace("{name}", env.cname if "/containers/" in path else "oadev")
            .replace("{sha}", sha).replace("{rev}", "0").replace("{key}", "oakey")), obj


@pytest.mark.parametrize("method,path", [(m, p) for m, p, _ in doc_ops()],
                         ids=["%s %s" % (m, p) for m, p, _ in doc_ops()])
def test_server_answers_documented_status(env, method, path):
    op = [o for m, p, o in doc_ops() if m == method and p == path][0]
    url, obj = sample_path(env, path)
    kw = {}
    body = op.get("requestBody", {}).get("content", {})
    if "application/json" in body:
        kw["data"] = "{}"
    elif "text/plain" in body:
        kw["data"] = "openapi"
    elif "application/octet-stream" in body:
        kw["upload"] = obj
    st, text = env.curl(url, method, **kw)
    assert str(st) in op["responses"], (method, url, st, text)
    if st >= 400:
        assert text.startswith('{"Error":'), text
    # an undocumented method on the same path is a documented 405
    others = {"GET", "PUT", "POST", "DELETE"} - {m for m, p, _ in doc_ops() if p == path}
    if others:
        st2, text2 = env.curl(url, sorted(others)[0], data="{}")
        assert st2 == 405, (url, st2, text2)
