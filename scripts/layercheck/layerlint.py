# Static checks of the Yocto layer in recipes/: layer.conf keys, licenses, file:// sources,
# inherit/require resolution, override syntax, varflags, python and shell function syntax.
"""Layer lint: every finding is 'path:line: message'; an empty list means the layer is clean."""

import glob
import json
import os
import re
import subprocess
import tempfile

import bbparse
import known

OLD_OVERRIDE_RE = re.compile(
    r'(_(append|prepend|remove)($|_|\[))'      # FOO_append, FOO_append_pn-x
    r'|(_\$\{PN\})'                              # RDEPENDS_${PN}
    r'|(_(class|pn|virtclass)-)'                 # FOO_class-native, FOO_pn-bar
    r'|^(RDEPENDS|RRECOMMENDS|RSUGGESTS|RPROVIDES|RREPLACES|RCONFLICTS|FILES|'
    r'ALLOW_EMPTY|INSANE_SKIP|pkg_postinst|pkg_preinst|pkg_postrm|pkg_prerm|'
    r'SUMMARY|DESCRIPTION|LICENSE|SECTION|CONFFILES)_[a-z$]')
OLD_FUNC_RE = re.compile(r'_(append|prepend|remove)$')
# Variables BitBake only accepts per package (VAR:<package>).
PER_PACKAGE = {'RDEPENDS', 'RRECOMMENDS', 'RSUGGESTS', 'RPROVIDES', 'RREPLACES', 'RCONFLICTS',
               'FILES', 'ALLOW_EMPTY', 'INSANE_SKIP', 'CONFFILES', 'pkg_postinst', 'pkg_preinst',
               'pkg_postrm', 'pkg_prerm'}


class Finding:
    def __init__(self, path, line, msg):
        self.path = path
        self.line = line
        self.msg = msg

    def __str__(self):
        return '%s:%s: %s' % (self.path, self.line, self.msg)


class Layer:
    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.findings = []
        self.parsed = {}

    def add(self, path, line, msg):
        self.findings.append(Finding(os.path.relpath(path, os.path.dirname(self.root)), line, msg))

    def parse(self, path):
        if path in self.parsed:
            return self.parsed[path]
        try:
            with open(path, encoding='utf-8') as f:
                stmts = bbparse.parse(f.read())
        except bbparse.ParseError as e:
            self.add(path, e.line, e.msg)
            stmts = None
        except UnicodeDecodeError:
            self.add(path, 1, 'not UTF-8 text')
            stmts = None
        self.parsed[path] = stmts
        return stmts

    def files(self, *patterns):
        out = []
        for p in patterns:
            out.extend(glob.glob(os.path.join(self.root, p), recursive=True))
        return sorted(set(out))

    # ---- resolution helpers ----
    def class_exists(self, name):
        for sub in ('classes', 'classes-recipe', 'classes-global'):
            if os.path.exists(os.path.join(self.root, sub, name + '.bbclass')):
                return True
        return name in known.CLASSES

    def resolve_require(self, path, target):
        """A require/include target: relative to the file's directory, or to a BBPATH entry."""
        cand = [os.path.join(os.path.dirname(path), target), os.path.join(self.root, target)]
        for c in cand:
            if os.path.exists(c):
                return c
        if target in known.INCLUDES:
            return ''
        return None

    # ---- checks ----
    def check_layer_conf(self):
        path = os.path.join(self.root, 'conf', 'layer.conf')
        if not os.path.exists(path):
            self.add(path, 0, 'conf/layer.conf is missing')
            return
        stmts = self.parse(path) or []
        values = {}
        for s in stmts:
            if s.kind == 'assign':
                values.setdefault(s.name, []).append(s.value)
        colls = ' '.join(values.get('BBFILE_COLLECTIONS', [])).split()
        for key in ('BBPATH', 'BBFILES', 'BBFILE_COLLECTIONS'):
            if key not in values:
                self.add(path, 0, 'missing %s' % key)
        if len(colls) != 1:
            self.add(path, 0, 'BBFILE_COLLECTIONS must name exactly one collection, has %r' % colls)
            return
        c = colls[0]
        for key in ('BBFILE_PATTERN_', 'BBFILE_PRIORITY_', 'LAYERDEPENDS_', 'LAYERSERIES_COMPAT_'):
            if key + c not in values:
                self.add(path, 0, 'missing %s%s' % (key, c))
        compat = ' '.join(values.get('LAYERSERIES_COMPAT_' + c, [])).split()
        if compat and known.SERIES not in compat:
            self.add(path, 0, 'LAYERSERIES_COMPAT_%s does not list %s' % (c, known.SERIES))
        for dep in ' '.join(values.get('LAYERDEPENDS_' + c, [])).split():
            if dep not in known.COLLECTIONS:
                self.add(path, 0, 'LAYERDEPENDS_%s names unknown collection "%s"' % (c, dep))
        if 'BBFILES' in values:
            globs = ' '.join(values['BBFILES']).replace('${LAYERDIR}', self.root).split()
            matched = [f for g in globs for f in glob.glob(g)]
            recipes = self.files('recipes-*/**/*.bb')
            for r in recipes:
                if r not in matched:
                    self.add(r, 0, 'recipe is not matched by BBFILES in conf/layer.conf')

    def check_statements(self, path, stmts):
        """Checks that need only the file itself."""
        for s in stmts:
            if s.kind == 'assign':
                self.check_assign(path, s)
            elif s.kind == 'shell':
                self.check_shell(path, s)
            elif s.kind in ('python', 'def'):
                self.check_python(path, s)
            elif s.kind == 'directive':
                self.check_directive(path, s)

    def check_name(self, path, line, name, what):
        if OLD_OVERRIDE_RE.search(name):
            self.add(path, line, 'old override syntax in %s "%s" (use ":" as in "%s")'
                     % (what, name, modernize(name)))

    def check_assign(self, path, s):
        self.check_name(path, s.line, s.name, 'variable')
        parts = s.name.split(':')
        if (parts[0] in PER_PACKAGE and s.flag is None
                and (len(parts) == 1 or parts[1] in ('append', 'prepend', 'remove'))):
            # BitBake warns: "Variable RDEPENDS is set as not being package specific"
            self.add(path, s.line, '%s without a package name (use %s:${PN})'
                     % (s.name, parts[0]))
        if parts[0].endswith('_COMMAND') and ';' in s.value:
            self.add(path, s.line, '%s: separate functions with spaces, not ";"' % s.name)
        if parts[0] == 'SRC_URI' or parts[0].endswith('_URI'):
            for uri in s.value.split():
                if uri.startswith('git://') or uri.startswith('gitsm://'):
                    params = uri.split(';')[1:]
                    if not any(p.startswith('branch=') or p == 'nobranch=1' for p in params):
                        self.add(path, s.line, 'git SRC_URI without branch=: %s' % uri)
                    if not any(p.startswith('protocol=') for p in params):
                        self.add(path, s.line, 'git SRC_URI without protocol=: %s' % uri)
        if s.flag is not None:
            base = s.name.split(':')[0]
            flag = s.flag
            if base in known.FLAG_DICTS or any(base.startswith(p) for p in known.FLAG_DICT_PREFIXES):
                pass
            elif base == 'SRC_URI' or base.startswith('SRC_URI'):
                if not re.match(r'^([A-Za-z0-9_\-]+\.)?(md5sum|sha1sum|sha256sum|sha384sum|'
                                r'sha512sum)$', flag):
                    self.add(path, s.line, 'unknown SRC_URI varflag [%s]' % flag)
            elif flag not in known.VARFLAGS:
                self.add(path, s.line, 'unknown varflag [%s] on %s' % (flag, s.name))
        if '${AUTOREV}' in s.value:
            self.add(path, s.line, '%s uses ${AUTOREV}: parsing would need the network' % s.name)
        for expr in bbparse.inline_python(s.value):
            self.check_expr(path, s.line, s.name, expr)

    def check_expr(self, path, line, name, expr):
        if expr is None:
            self.add(path, line, 'unterminated ${@...} in %s' % name)
            return
        try:
            compile(expr, '%s:%d' % (path, line), 'eval')
        except SyntaxError as e:
            self.add(path, line, 'python expression in %s does not compile: %s' % (name, e.msg))

    def check_python(self, path, s):
        self.check_name(path, s.line, s.name, 'function')
        if s.kind == 'def':
            src = '\n'.join(s.body) + '\n'
        else:
            # BitBake compiles "def <name>(d):" followed by the body as written.
            src = 'def __pyfunc(d):\n' + '\n'.join(s.body) + '\n    pass\n'
        try:
            compile(src, '%s:%d' % (path, s.line), 'exec')
        except SyntaxError as e:
            lineno = s.line + (e.lineno or 1) - (1 if s.kind == 'def' else 0)
            self.add(path, lineno, 'python function %s does not compile: %s' % (s.name, e.msg))
        for k, l in enumerate(s.body):
            for expr in bbparse.inline_python(l):
                self.check_expr(path, s.line + k + 1, s.name, expr)

    def check_shell(self, path, s):
        self.check_name(path, s.line, s.name, 'function')
        if OLD_FUNC_RE.search(s.name.split(':')[0]):
            self.add(path, s.line, 'old override syntax in function "%s"' % s.name)
        indents = set()
        for k, l in enumerate(s.body):
            lead = l[:len(l) - len(l.lstrip(' \t'))]
            if not l.strip():
                continue
            if ' ' in lead and '\t' in lead:
                self.add(path, s.line + k + 1, 'tabs and spaces mixed in the indentation of %s'
                         % s.name)
            if lead:
                indents.add('\t' if lead[0] == '\t' else ' ')
        if len(indents) > 1:
            self.add(path, s.line, 'shell function %s indents some lines with tabs and others '
                     'with spaces' % s.name)
        body = bbparse.strip_inline_python('\n'.join(s.body))
        for k, l in enumerate(s.body):
            for expr in bbparse.inline_python(l):
                self.check_expr(path, s.line + k + 1, s.name, expr)
        with tempfile.NamedTemporaryFile('w', suffix='.sh') as tf:
            tf.write('f() {\n' + body + '\n}\n')
            tf.flush()
            r = subprocess.run(['bash', '-n', tf.name], capture_output=True, text=True)
        if r.returncode != 0:
            msg = r.stderr.strip().splitlines()
            msg = msg[0].split(': ', 2)[-1] if msg else 'syntax error'
            self.add(path, s.line, 'shell function %s: bash -n: %s' % (s.name, msg))

    def check_directive(self, path, s):
        if s.kw in ('inherit', 'inherit_defer'):
            for cls in s.args.split():
                if '$' in cls:
                    self.add(path, s.line, 'inherit of a computed class "%s" cannot be checked; '
                             'name the class' % cls)
                elif not self.class_exists(cls):
                    self.add(path, s.line, 'inherit %s: no classes/%s.bbclass in the layer and '
                             'not a known core/meta-oe/meta-virtualization class' % (cls, cls))
        elif s.kw in ('require', 'include'):
            target = s.args.strip()
            if '$' in target:
                self.add(path, s.line, '%s of a computed path "%s" cannot be checked'
                         % (s.kw, target))
            elif self.resolve_require(path, target) is None:
                self.add(path, s.line, '%s %s: file not found in the layer and not a known '
                         'core file' % (s.kw, target))
        elif s.kw in ('addtask', 'deltask'):
            words = s.args.split()
            for w in words:
                if w not in ('after', 'before') and OLD_FUNC_RE.search(w):
                    self.add(path, s.line, 'old override syntax in task "%s"' % w)

    # ---- whole-recipe checks (file plus what it requires) ----
    def recipe_statements(self, path, seen=None):
        seen = seen if seen is not None else set()
        if path in seen:
            return []
        seen.add(path)
        stmts = self.parse(path) or []
        out = []
        for s in stmts:
            out.append((path, s))
            if s.kind == 'directive' and s.kw in ('require', 'include') and '$' not in s.args:
                inc = self.resolve_require(path, s.args.strip())
                if inc:
                    out.extend(self.recipe_statements(inc, seen))
        return out

    def check_recipe(self, path):
        base = os.path.basename(path)
        stem = base.rsplit('.', 1)[0]
        pn, _, pv = stem.partition('_')
        stmts = self.recipe_statements(path)
        assigned = {}
        for p, s in stmts:
            if s.kind == 'assign' and s.flag is None:
                assigned.setdefault(s.name.split(':')[0], []).append((p, s))
        inherits = [c for p, s in stmts if s.kind == 'directive' and s.kw == 'inherit'
                    for c in s.args.split()]
        if path.endswith('.bb'):
            for key in ('LICENSE', 'LIC_FILES_CHKSUM'):
                if key not in assigned:
                    self.add(path, 0, 'recipe sets no %s' % key)
            for p, s in assigned.get('LIC_FILES_CHKSUM', []):
                for uri in s.value.split():
                    if 'md5=' not in uri and 'sha256=' not in uri:
                        self.add(p, s.line, 'LIC_FILES_CHKSUM entry without md5=/sha256=: %s'
                                 % uri)
        # file:// sources, searched like FILESPATH: <dir>/<BP>, <dir>/<BPN>, <dir>/files, <dir>
        env = {'PN': pn, 'BPN': pn, 'PV': pv or '1.0'}
        env['BP'] = '%s-%s' % (pn, env['PV'])
        env['P'] = env['BP']
        # plain variables of the recipe (no overrides, no references) expand in file:// names
        for p, s in stmts:
            if (s.kind == 'assign' and s.flag is None and s.op in ('=', '?=', '??=', ':=')
                    and ':' not in s.name and '$' not in s.name and '$' not in s.value):
                env.setdefault(s.name, s.value)
        rdir = os.path.dirname(path)
        search = [os.path.join(rdir, d) for d in (env['BP'], pn, 'files')] + [rdir]
        for p, s in stmts:
            if s.kind != 'assign' or s.flag is not None or s.name.split(':')[0] != 'SRC_URI':
                continue
            for uri in s.value.split():
                if not uri.startswith('file://'):
                    continue
                rel = uri[len('file://'):].split(';')[0]
                rel = re.sub(r'\$\{(\w+)\}', lambda m: env.get(m.group(1), m.group(0)), rel)
                if '${' in rel:
                    self.add(p, s.line, 'SRC_URI %s: cannot expand %s offline' % (uri, rel))
                    continue
                if not any(os.path.exists(os.path.join(d, rel)) for d in search):
                    self.add(p, s.line, 'SRC_URI file://%s not found (looked in %s)'
                             % (rel, ', '.join(os.path.relpath(d, self.root) for d in search)))
        self.check_packageconfig(path, stmts)
        if 'image' in inherits and path.endswith('.bb'):
            for key in ('IMAGE_INSTALL', 'PACKAGE_INSTALL'):
                if key in assigned:
                    break
            else:
                self.add(path, 0, 'image recipe sets neither IMAGE_INSTALL nor PACKAGE_INSTALL')

    def check_packageconfig(self, path, stmts):
        """Every PACKAGECONFIG word needs a PACKAGECONFIG[word] (else "invalid PACKAGECONFIG").
        ${@fn(d)} values are evaluated with the recipe's own def's and known.LINT_VARS."""
        flags = {s.flag for p, s in stmts if s.kind == 'assign' and s.flag is not None
                 and s.name == 'PACKAGECONFIG'}
        if not flags:
            return
        env = {'bb': _FakeBB, 'os': os}
        for p, s in stmts:
            if s.kind == 'def':
                try:
                    exec(compile('\n'.join(s.body) + '\n', p, 'exec'), env)
                except Exception:  # reported by check_python
                    pass
        data = _FakeData(dict(known.LINT_VARS))
        for p, s in stmts:
            if s.kind != 'assign' or s.flag is not None or s.name.split(':')[0] != 'PACKAGECONFIG':
                continue
            value = s.value
            for expr in list(bbparse.inline_python(value)):
                try:
                    res = eval(expr, dict(env, d=data))
                except Exception as e:
                    self.add(p, s.line, 'PACKAGECONFIG expression fails: %s' % e)
                    res = ''
                value = value.replace('${@' + expr + '}', str(res), 1)
            for word in value.split():
                if '$' not in word and word not in flags:
                    self.add(p, s.line, 'PACKAGECONFIG "%s" has no PACKAGECONFIG[%s]'
                             % (word, word))

    def check_data_files(self):
        for f in self.files('**/*.json'):
            try:
                with open(f) as fh:
                    json.load(fh)
            except ValueError as e:
                self.add(f, 0, 'invalid JSON: %s' % e)

    def run(self):
        if not os.path.isdir(self.root):
            self.add(self.root, 0, 'layer directory does not exist')
            return self.findings
        self.check_layer_conf()
        allfiles = self.files('**/*.bb', '**/*.bbappend', '**/*.bbclass', '**/*.inc',
                              'conf/**/*.conf')
        for f in allfiles:
            stmts = self.parse(f)
            if stmts is not None:
                self.check_statements(f, stmts)
        for f in self.files('**/*.bb', '**/*.bbappend'):
            self.check_recipe(f)
        self.check_data_files()
        return self.findings


class _FakeData:
    def __init__(self, values):
        self.values = values

    def getVar(self, name, expand=True):
        return self.values.get(name, '')


class _FakeUtils:
    @staticmethod
    def contains(var, check, t, f, d):
        return t if set(check.split()) <= set((d.getVar(var) or '').split()) else f

    @staticmethod
    def filter(var, words, d):
        have = (d.getVar(var) or '').split()
        return ' '.join(w for w in words.split() if w in have)


class _FakeBB:
    utils = _FakeUtils


def modernize(name):
    n = re.sub(r'_(append|prepend|remove)', r':\1', name)
    n = re.sub(r'_(\$\{PN\}|class-|pn-)', lambda m: ':' + m.group(1), n)
    n = re.sub(r'^(RDEPENDS|RRECOMMENDS|FILES|ALLOW_EMPTY|INSANE_SKIP)_', r'\1:', n)
    return n


def lint_conf_text(text, origin, findings):
    """Lints a local.conf fragment (from a kas file) for override syntax and parseability."""
    try:
        stmts = bbparse.parse(text)
    except bbparse.ParseError as e:
        findings.append('%s: line %d: %s' % (origin, e.line, e.msg))
        return
    for s in stmts:
        if s.kind == 'assign':
            if OLD_OVERRIDE_RE.search(s.name):
                findings.append('%s: line %d: old override syntax "%s" (use "%s")'
                                % (origin, s.line, s.name, modernize(s.name)))
            for expr in bbparse.inline_python(s.value):
                try:
                    compile(expr or '', origin, 'eval')
                except SyntaxError as e:
                    findings.append('%s: line %d: python expression does not compile: %s'
                                    % (origin, s.line, e.msg))
        elif s.kind == 'directive' and s.kw in ('inherit', 'require', 'include'):
            pass
