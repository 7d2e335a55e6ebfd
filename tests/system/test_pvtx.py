# test_pvtx.py: pvtx local transactions: begin/add/remove/show/abort/commit/deploy; deployed
# objects are hard links of the object dir and json files keep their bytes.
import json
import os
import subprocess
import tarfile

import pytest

import pvtest

PVTX = pvtest.bin_path("pvtx")
pytestmark = pytest.mark.skipif(not os.path.exists(PVTX), reason="pvtx not built")


def make_pkg(dev, name, files, sub="src"):
    """A pvrexport of a container dir holding `files` (name -> bytes)."""
    src = dev.path(sub, name)
    os.makedirs(src)
    for f, data in files.items():
        with open(os.path.join(src, f), "wb") as fh:
            fh.write(data)
    out = dev.path(sub, name + ".tgz")
    pvtest.run([pvtest.bin_path("pv-mkexport"), name, src, out])
    return out


RUN_A = b'{"#spec":"service-manifest-run@1",  "name":"a", "type":"lxc",\n "root-volume":"root.squashfs"}'


def show(dev):
    return json.loads(dev.pvtx("show").stdout)


def test_begin_add_deploy_links_and_bytes(device):
    objdir = os.path.join(device.storage, "objects")
    pkg = make_pkg(device, "a", {"run.json": RUN_A, "root.squashfs": b"SQUASH" * 1000,
                                 "lxc.container.conf": b"lxc.init.cmd = /bin/sh\n"})
    device.pvtx("begin", "empty", objdir)
    device.pvtx("add", pkg)
    st = show(device)
    assert st["#spec"] == "pantavisor-service-system@1"
    assert sorted(st) == ["#spec", "a/lxc.container.conf", "a/root.squashfs", "a/run.json"]
    trail = os.path.join(device.storage, "trails", "0")
    os.makedirs(os.path.dirname(trail), exist_ok=True)
    device.pvtx("deploy", trail)
    sha = st["a/root.squashfs"]
    dep = os.stat(os.path.join(trail, "a", "root.squashfs"))
    obj = os.stat(os.path.join(objdir, sha))
    assert (dep.st_ino, dep.st_dev) == (obj.st_ino, obj.st_dev) and obj.st_nlink >= 2
    # the json file is the value's text as it appears in the state (pv-mkexport pretty-prints it
    # into the fragment, so compare against the state text, and parse-equal with the source)
    with open(os.path.join(trail, ".pvr", "json"), "rb") as f:
        state_text = f.read()
    with open(os.path.join(trail, "a", "run.json"), "rb") as f:
        run_text = f.read()
    assert run_text in state_text
    assert json.loads(run_text) == json.loads(RUN_A)
    assert json.loads(state_text) == st
    with open(os.path.join(trail, ".pvr", "config")) as f:
        assert json.load(f) == {"ObjectsDir": os.path.realpath(objdir)}
    assert not os.path.exists(trail + ".pvtx-tmp") and not os.path.exists(trail + ".bak")


def test_add_state_json_keeps_bytes_and_prefix_replace(device):
    objdir = os.path.join(device.storage, "objects")
    os.makedirs(objdir)
    sha = "ab" * 32
    with open(os.path.join(objdir, sha), "w") as f:
        f.write("obj")
    raw = '{ "x" : [1,2,  3],"y":"z" }'
    state = ('{"#spec":"pantavisor-service-system@1","b/conf.json":%s,"b/blob":"%s",'
             '"b/blob.old":"%s","c/run.json":{"k":1}}' % (raw, sha, sha))
    sp = device.path("state.json")
    with open(sp, "w") as f:
        f.write(state)
    device.pvtx("begin", sp, objdir)
    # a package key replaces every key it prefixes ("b/blob" removes "b/blob.old")
    frag = device.path("frag.json")
    with open(frag, "w") as f:
        f.write('{"b/blob":"%s"}' % sha)
    device.pvtx("add", frag)
    st = show(device)
    assert "b/blob.old" not in st and st["b/blob"] == sha and "c/run.json" in st
    trail = os.path.join(device.storage, "trails", "1")
    device.pvtx("deploy", trail)
    with open(os.path.join(trail, "b", "conf.json")) as f:
        assert f.read() == raw  # byte-identical, spacing included
    # deploy again over an existing dir: atomic swap, no leftovers
    device.pvtx("begin", trail, objdir, check=False)  # still deployed -> begin allowed
    device.pvtx("remove", "c")
    device.pvtx("deploy", trail)
    assert not os.path.exists(os.path.join(trail, "c"))
    assert os.path.exists(os.path.join(trail, "b", "blob"))
    assert sorted(os.listdir(os.path.dirname(trail))) == ["1"]


def test_remove_abort_commit_and_errors(device):
    objdir = os.path.join(device.storage, "objects")
    a = make_pkg(device, "a", {"run.json": RUN_A, "root.squashfs": b"A"})
    b = make_pkg(device, "ab", {"run.json": b'{"name":"ab"}', "root.squashfs": b"B"})
    device.pvtx("begin", "empty", objdir)
    r = device.pvtx("begin", "empty", objdir, check=False)
    assert r.returncode != 0 and "abort" in r.stderr  # one transaction at a time
    device.pvtx("add", a)
    device.pvtx("add", b)
    device.pvtx("remove", "a")  # "ab" is another part, not removed
    assert sorted(show(device)) == ["#spec", "ab/root.squashfs", "ab/run.json"]
    r = device.pvtx("remove", "nosuch", check=False)
    assert r.returncode != 0 and "nosuch" in r.stderr
    # unsafe keys are refused
    bad = device.path("bad.json")
    with open(bad, "w") as f:
        f.write('{"../etc/passwd":{"x":1}}')
    r = device.pvtx("add", bad, check=False)
    assert r.returncode != 0 and "../etc/passwd" in r.stderr
    # a corrupt object in a package is refused
    t = device.path("corrupt.tar")
    with tarfile.open(t, "w") as tf:
        p = device.path("j")
        with open(p, "w") as f:
            f.write('{"z/f":"%s"}' % ("cd" * 32))
        tf.add(p, "json")
        with open(device.path("o"), "w") as f:
            f.write("not matching")
        tf.add(device.path("o"), "objects/" + "cd" * 32)
    r = device.pvtx("add", t, check=False)
    assert r.returncode != 0 and "hashes to" in r.stderr
    # named like a package but not one (a failed download): said so, not "not a JSON object"
    junk = device.path("junk.pvrexport.tgz")
    with open(junk, "w") as f:
        f.write("<html>404</html>\n")
    r = device.pvtx("add", junk, check=False)
    assert r.returncode != 0 and "junk.pvrexport.tgz: named like a package" in r.stderr, r.stderr
    # commit deploys into <storage>/trails/locals/<name>
    r = device.pvtx("commit", "locals/mine")
    assert r.stdout.strip() == "locals/mine"
    trail = os.path.join(device.storage, "trails", "locals", "mine")
    assert os.path.isfile(os.path.join(trail, ".pvr", "json"))
    assert os.path.isfile(os.path.join(trail, "ab", "root.squashfs"))
    r = device.pvtx("show", check=False)
    assert r.returncode != 0  # no longer active
    device.pvtx("begin", "empty", objdir)
    device.pvtx("abort")
    assert device.pvtx("show", check=False).returncode != 0
    # stdin input
    device.pvtx("begin", "empty", objdir)
    with open(a, "rb") as f:
        subprocess.run([PVTX, "add", "-"], stdin=f, env=device.env(), check=True)
    assert "a/run.json" in show(device)
