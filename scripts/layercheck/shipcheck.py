# Emulates BitBake's package split for our recipes over a real `cmake --install` tree: every
# installed file must land in a package ("installed-vs-shipped"), and prints where each went.
"""Usage: shipcheck.py --destdir DIR --layer recipes [--expect PATH=PACKAGE ...]

Files under ${libdir}/pantavisor/examples are split by pantavisor-examples_git.bb, the rest by
pantavisor_git.bb, with oe-core's default FILES for ${PN}, -dev, -staticdev, -doc."""

import argparse
import fnmatch
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bbparse  # noqa: E402

# oe-core's directory variables for a target build (bitbake.conf, usrmerge off)
PATHS = {
    'prefix': '/usr', 'exec_prefix': '/usr', 'base_prefix': '', 'bindir': '/usr/bin',
    'sbindir': '/usr/sbin', 'libexecdir': '/usr/libexec', 'libdir': '/usr/lib',
    'includedir': '/usr/include', 'datadir': '/usr/share', 'sysconfdir': '/etc',
    'localstatedir': '/var', 'sharedstatedir': '/com', 'docdir': '/usr/share/doc',
    'mandir': '/usr/share/man', 'infodir': '/usr/share/info', 'base_bindir': '/bin',
    'base_sbindir': '/sbin', 'base_libdir': '/lib', 'SOLIBS': '.so.*', 'SOLIBSDEV': '.so',
}
# oe-core's default FILES (bitbake.conf), ${PN} replaced per recipe
DEFAULT_FILES = {
    '-dev': '${includedir} ${libdir}/lib*${SOLIBSDEV} ${base_libdir}/lib*${SOLIBSDEV} '
            '${libdir}/*.la ${libdir}/*.o ${libdir}/pkgconfig ${datadir}/pkgconfig '
            '${datadir}/aclocal ${libdir}/cmake ${datadir}/cmake',
    '-staticdev': '${libdir}/*.a ${base_libdir}/*.a ${libdir}/${BPN}/*.a',
    '-doc': '${docdir} ${mandir} ${infodir} ${datadir}/gtk-doc ${datadir}/gnome/help',
    '': '${bindir}/* ${sbindir}/* ${libexecdir}/* ${libdir}/lib*${SOLIBS} ${sysconfdir} '
        '${sharedstatedir} ${localstatedir} ${base_bindir}/* ${base_sbindir}/* '
        '${base_libdir}/*${SOLIBS} ${datadir}/${BPN} ${libdir}/${BPN}/*',
}


def expand(text, env):
    out = text
    for _ in range(10):
        new = out
        for k, v in env.items():
            new = new.replace('${%s}' % k, v)
        if new == out:
            break
        out = new
    return out


def recipe_packages(recipe):
    """(ordered package list, {package: [patterns]}) from the recipe and what it requires."""
    pn = os.path.basename(recipe).split('_')[0].split('.')[0]
    stmts = []

    def load(path):
        with open(path) as f:
            for s in bbparse.parse(f.read()):
                stmts.append(s)
                if s.kind == 'directive' and s.kw in ('require', 'include'):
                    load(os.path.join(os.path.dirname(path), s.args.strip()))

    load(recipe)
    env = dict(PATHS, PN=pn, BPN=pn)
    files = {}
    before = []
    for s in stmts:
        if s.kind == 'assign' and s.flag is None:
            name = expand(s.name, env)
            if name == 'PACKAGE_BEFORE_PN':
                before += expand(s.value, env).split()
            elif name.startswith('FILES:'):
                pkg = name[len('FILES:'):]
                if pkg.endswith(':class-native'):
                    continue
                val = expand(s.value, env).split()
                if s.op == '=':
                    files[pkg] = val
                elif s.op == '+=':
                    files.setdefault(pkg, None)
                    files[pkg] = (files[pkg] if files[pkg] is not None else
                                  expand(DEFAULT_FILES[''], env).split()) + val
        elif s.kind == 'python' and 'PV_EXAMPLE_NAMES' in '\n'.join(s.body):
            # pantavisor-examples makes one package per example in python; mirror it
            for st in stmts:
                if st.kind == 'assign' and st.name == 'PV_EXAMPLE_NAMES':
                    for ex in st.value.split():
                        pkg = 'pantavisor-examples-' + ex
                        before.append(pkg)
                        files[pkg] = [expand('${libdir}/pantavisor/examples/pv-example-', env)
                                      + ex]
    order = [pn + '-staticdev', pn + '-dev', pn + '-doc'] + before + [pn]
    for suffix, pat in DEFAULT_FILES.items():
        files.setdefault(pn + suffix, None)
        if files[pn + suffix] is None:
            files[pn + suffix] = expand(pat, env).split()
    return order, files


def matches(path, pattern):
    """glob semantics: '*' stays within one path component; a matched directory owns its tree."""
    pp = pattern.strip('/').split('/')
    fp = path.strip('/').split('/')
    if len(fp) < len(pp):
        return False
    return all(fnmatch.fnmatchcase(f, p) for f, p in zip(fp, pp))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--destdir', required=True)
    ap.add_argument('--layer', required=True)
    ap.add_argument('--expect', action='append', default=[], help='PATH=PACKAGE')
    ap.add_argument('--expect-if-installed', action='append', default=[],
                    help='PATH=PACKAGE, checked only when the build installs PATH')
    ap.add_argument('--install-prefix', default='/usr',
                    help="the build's CMAKE_INSTALL_PREFIX; mapped to /usr (and <prefix>/etc to "
                         "/etc) as a Yocto build configures it")
    a = ap.parse_args()
    pre = a.install_prefix.rstrip('/') or '/usr'

    def yocto_path(f):
        if f.startswith(pre + '/etc/'):
            return f[len(pre):]
        if f.startswith(pre + '/'):
            return '/usr' + f[len(pre):]
        return f

    rdir = os.path.join(a.layer, 'recipes-pv', 'pantavisor')
    recipes = {
        'examples': recipe_packages(os.path.join(rdir, 'pantavisor-examples_git.bb')),
        'main': recipe_packages(os.path.join(rdir, 'pantavisor_git.bb')),
    }
    installed = []
    for dirpath, dirnames, filenames in os.walk(a.destdir):
        for n in filenames:
            installed.append(yocto_path('/' + os.path.relpath(os.path.join(dirpath, n),
                                                          a.destdir)))
    owner = {}
    problems = []
    for f in sorted(installed):
        which = 'examples' if f.startswith(PATHS['libdir'] + '/pantavisor/examples/') else 'main'
        order, files = recipes[which]
        for pkg in order:
            if any(matches(f, p) for p in files.get(pkg) or []):
                owner[f] = pkg
                break
        else:
            problems.append('installed but not shipped in any package: %s' % f)
    for f in sorted(owner):
        print('%-60s %s' % (f, owner[f]))
    for e in a.expect:
        path, _, pkg = e.partition('=')
        if path not in owner:
            problems.append('expected %s to be installed' % path)
        elif owner[path] != pkg:
            problems.append('%s goes to %s, expected %s' % (path, owner[path], pkg))
    checked = len(a.expect)
    for e in a.expect_if_installed:
        path, _, pkg = e.partition('=')
        if path in owner:
            checked += 1
            if owner[path] != pkg:
                problems.append('%s goes to %s, expected %s' % (path, owner[path], pkg))
    print('placements checked: %d' % checked)
    for p in problems:
        print('PROBLEM: ' + p)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
