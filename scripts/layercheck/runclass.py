# Runs the pvrexport image type of image-pvrexport.bbclass outside BitBake: the class's own
# python prefunc and IMAGE_CMD shell text, with its variables expanded as BitBake would.
"""Usage: runclass.py --class FILE --set VAR=VALUE ... (needs mksquashfs and pv-mkexport on PATH)

Lets a test build a pvrexport with exactly the code a Yocto build runs, so the class and the
local image builder can be checked against one format on a machine without BitBake."""

import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bbparse  # noqa: E402


class _Utils:
    @staticmethod
    def contains(var, checkvalues, truevalue, falsevalue, d):
        have = set((d.getVar(var) or '').split())
        want = set(checkvalues.split()) if isinstance(checkvalues, str) else set(checkvalues)
        return truevalue if want <= have else falsevalue


class _Fatal(Exception):
    pass


class _BB:
    utils = _Utils

    @staticmethod
    def fatal(msg):
        raise _Fatal(msg)

    @staticmethod
    def note(*a):
        pass

    warn = note


class Data:
    """The part of BitBake's datastore the class uses: getVar with ${VAR} and ${@...}."""

    def __init__(self, values):
        self.values = values

    def getVar(self, name, expand=True):
        v = self.values.get(name)
        return self.expand(v) if (v is not None and expand) else v

    def setVar(self, name, value):
        self.values[name] = value

    def expand(self, text, depth=0):
        if depth > 20:
            raise _Fatal('recursive expansion in %r' % text)
        out = text
        for expr in list(bbparse.inline_python(out)):
            val = eval(expr, {'bb': _BB, 'd': self, 'os': os})
            out = out.replace('${@' + expr + '}', str(val), 1)

        def sub(m):
            v = self.values.get(m.group(1))
            return m.group(0) if v is None else self.expand(v, depth + 1)

        return re.sub(r'\$\{([A-Za-z0-9_\-:]+)\}', sub, out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--class', dest='cls', action='append', required=True,
                    help='class/include file, in inherit order (repeatable)')
    ap.add_argument('--set', action='append', default=[], help='VAR=VALUE (wins over the files)')
    ap.add_argument('--run', action='append',
                    help='functions to run in order (default: the pvrexport image type)')
    a = ap.parse_args()

    # BitBake: "=" sets, "?=" sets if unset, "??=" is a weak default (the last one wins) used
    # only when nothing else set the variable.
    weak = {}
    values = {}
    funcs = {}
    for path in a.cls:
        with open(path) as f:
            stmts = bbparse.parse(f.read())
        for s in stmts:
            if s.kind == 'assign' and s.flag is None and ':' not in s.name:
                if s.op == '??=':
                    weak[s.name] = s.value
                elif s.op == '?=':
                    values.setdefault(s.name, s.value)
                elif s.op == '=':
                    values[s.name] = s.value
            elif s.kind in ('python', 'shell'):
                funcs[s.name] = (path, s)
    values = dict(weak, **values)
    for kv in a.set:
        k, _, v = kv.partition('=')
        values[k] = v
    d = Data(values)

    for name in a.run or ['pvrexport_write_manifests', 'IMAGE_CMD:pvrexport']:
        if name not in funcs:
            print('runclass: no function %s' % name, file=sys.stderr)
            return 1
        path, fn = funcs[name]
        if fn.kind == 'python':
            src = 'def %s(d):\n' % name + '\n'.join(fn.body) + '\n'
            env = {'bb': _BB}
            exec(compile(src, path, 'exec'), env)
            try:
                env[name](d)
            except _Fatal as e:
                print('runclass: %s: bb.fatal: %s' % (name, e), file=sys.stderr)
                return 1
        else:
            # BitBake runs shell functions with "set -e" under /bin/sh, with bbfatal & co.
            body = d.expand('\n'.join(fn.body))
            prelude = 'bbfatal() { echo "ERROR: $*" >&2; exit 1; }\nbbnote() { echo "$*"; }\n'
            r = subprocess.run(['sh', '-e', '-c', prelude + body])
            if r.returncode != 0:
                print('runclass: %s failed (%d)' % (name, r.returncode), file=sys.stderr)
                return r.returncode
    return 0


if __name__ == '__main__':
    sys.exit(main())
