# Checks one pvrexport tarball against the format pantavisor consumes: gzip tar of `json` plus
# objects/<sha256>, owner 0/0, mtime 0, sorted; *.json inline, other files by sha256.
"""Usage: verify_pvrexport.py FILE NAME [--expect-key KEY ...] [--expect-entry CMD]
         [--layout-of OTHER]   print or compare the layout (keys and their kinds)

Exit 0 when valid; otherwise prints every problem, one a line, and exits 1."""

import argparse
import gzip
import hashlib
import json
import re
import sys
import tarfile

SHA_RE = re.compile(r'^[0-9a-f]{64}$')


def load(path, problems):
    try:
        with open(path, 'rb') as f:
            if f.read(2) != b'\x1f\x8b':
                problems.append('%s: not gzip' % path)
                return None, {}
        tf = tarfile.open(path, 'r:gz')
    except (OSError, tarfile.TarError, gzip.BadGzipFile) as e:
        problems.append('%s: cannot open: %s' % (path, e))
        return None, {}
    members = tf.getmembers()
    names = [m.name for m in members]
    files = {}
    for m in members:
        name = m.name[2:] if m.name.startswith('./') else m.name
        if m.isdir():
            if name.rstrip('/') not in ('', '.', 'objects'):
                problems.append('unexpected directory %s' % m.name)
            continue
        if m.uid != 0 or m.gid != 0:
            problems.append('%s is owned by %d:%d, not 0:0' % (m.name, m.uid, m.gid))
        if m.mtime != 0:
            problems.append('%s has mtime %d, not 0' % (m.name, m.mtime))
        if not m.isfile():
            problems.append('%s is not a regular file' % m.name)
            continue
        files[name] = tf.extractfile(m).read()
    if names != sorted(names):
        problems.append('members are not sorted: %s' % names)
    return tf, files


def layout(state):
    """Key -> kind ('json' for inline objects, 'object' for sha256 references)."""
    return {k: ('json' if isinstance(v, (dict, list)) else 'object') for k, v in state.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('file')
    ap.add_argument('name')
    ap.add_argument('--expect-key', action='append', default=[])
    ap.add_argument('--expect-entry')
    ap.add_argument('--layout-of', help='another pvrexport whose layout must be the same')
    ap.add_argument('--print-layout', action='store_true')
    a = ap.parse_args()

    problems = []
    _, files = load(a.file, problems)
    if 'json' not in files:
        problems.append('no `json` member')
        print('\n'.join(problems))
        return 1
    try:
        state = json.loads(files['json'])
    except ValueError as e:
        print('`json` is not JSON: %s' % e)
        return 1
    for fname in files:
        if fname != 'json' and not (fname.startswith('objects/') and SHA_RE.match(fname[8:])):
            problems.append('unexpected member %s' % fname)
    for fname, data in files.items():
        if fname.startswith('objects/') and hashlib.sha256(data).hexdigest() != fname[8:]:
            problems.append('%s does not hold data with that sha256' % fname)
    objects = {f[8:]: data for f, data in files.items() if f.startswith('objects/')}
    for key, val in state.items():
        if key.endswith('.json'):
            if not isinstance(val, (dict, list)):
                problems.append('%s must be inline JSON, is %r' % (key, val))
        elif not (isinstance(val, str) and SHA_RE.match(val)):
            problems.append('%s must be a sha256, is %r' % (key, val))
        elif val not in objects:
            problems.append('%s names object %s, which the tarball lacks' % (key, val))
    for key in a.expect_key:
        if key not in state:
            problems.append('missing key %s (have %s)' % (key, ', '.join(sorted(state))))
    run = state.get(a.name + '/run.json')
    if isinstance(run, dict):
        if run.get('name') != a.name:
            problems.append('run.json name is %r, not %r' % (run.get('name'), a.name))
        for k in ('type', 'root-volume', 'config'):
            if k not in run:
                problems.append('run.json has no %s' % k)
        vol = run.get('root-volume')
        if vol and (a.name + '/' + vol) not in state:
            problems.append('run.json root-volume %s is not in the state' % vol)
    sq = state.get(a.name + '/root.squashfs')
    if sq in objects and objects[sq][:4] != b'hsqs':
        problems.append('root.squashfs object is not a squashfs image')
    conf = state.get(a.name + '/lxc.container.conf')
    if a.expect_entry and conf in objects:
        text = objects[conf].decode('utf-8', 'replace')
        if ('lxc.init.cmd = %s' % a.expect_entry) not in text:
            problems.append('lxc.container.conf does not start %s:\n%s' % (a.expect_entry, text))
    if a.layout_of:
        other_problems = []
        _, ofiles = load(a.layout_of, other_problems)
        other = json.loads(ofiles.get('json', b'{}'))
        mine, theirs = layout(state), layout(other)
        if mine != theirs:
            problems.append('layout differs from %s: %s vs %s' % (a.layout_of, mine, theirs))
    if a.print_layout:
        print(json.dumps(layout(state), sort_keys=True))
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
