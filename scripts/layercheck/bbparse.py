# Splits BitBake files (.bb, .bbappend, .bbclass, .inc, .conf) into statements with line numbers.
# Not BitBake: just enough structure (assignments, flags, functions, directives) to lint offline.
"""A small, line-oriented BitBake reader for the layer lint."""

import re

# Variable names may carry overrides (FOO:append:class-target), ${...} parts and '-', '/', '.', '+'.
_NAME = r'[A-Za-z0-9_${}\-/.+~:@]+'
ASSIGN_RE = re.compile(
    r'^(?P<export>export\s+)?(?P<name>' + _NAME + r')(?:\[(?P<flag>[^\]]+)\])?\s*'
    r'(?P<op>\?\?=|\?=|:=|\+=|=\+|\.=|=\.|=)\s*(?P<value>.*)$', re.S)
EXPORT_RE = re.compile(r'^(export|unexport)\s+(' + _NAME + r')\s*$')
SHELLFUNC_RE = re.compile(
    r'^(?P<fakeroot>fakeroot\s+)?(?P<name>[A-Za-z0-9_${}\-.+:]+)\s*\(\s*\)\s*\{\s*$')
PYFUNC_RE = re.compile(
    r'^(?P<fakeroot>fakeroot\s+)?python\s*(?P<name>[A-Za-z0-9_${}\-.+:]*)\s*\(\s*\)\s*\{\s*$')
DEF_RE = re.compile(r'^def\s+(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*\(.*\)\s*:\s*$')
DIRECTIVE_RE = re.compile(
    r'^(?P<kw>inherit_defer|inherit|require|include_all|include|addtask|deltask|addhandler|'
    r'EXPORT_FUNCTIONS|addpylib)\b\s*(?P<args>.*)$')


class Stmt:
    """One statement: kind is 'assign', 'shell', 'python', 'def', 'directive' or 'export'."""

    def __init__(self, kind, line, **kw):
        self.kind = kind
        self.line = line
        self.__dict__.update(kw)

    def __repr__(self):
        return 'Stmt(%s@%d %r)' % (self.kind, self.line, getattr(self, 'name', ''))


class ParseError(Exception):
    def __init__(self, line, msg):
        super().__init__(msg)
        self.line = line
        self.msg = msg


def _logical_lines(lines, start):
    """Joins backslash-continued lines; returns (text, next_index)."""
    text = lines[start].rstrip('\n')
    i = start + 1
    while text.endswith('\\') and i < len(lines):
        text = text[:-1] + '\n' + lines[i].rstrip('\n')
        i += 1
    return text, i


def parse(text):
    """Returns a list of Stmt; raises ParseError on a line it cannot classify."""
    lines = text.split('\n')
    out = []
    i = 0
    n = len(lines)
    while i < n:
        raw = lines[i]
        stripped = raw.strip()
        lineno = i + 1
        if not stripped or stripped.startswith('#'):
            i += 1
            continue
        m = PYFUNC_RE.match(raw) if raw.lstrip() == raw else None
        sm = None if m else (SHELLFUNC_RE.match(raw) if raw.lstrip() == raw else None)
        if m or sm:
            body = []
            j = i + 1
            while j < n and lines[j].rstrip() != '}':
                body.append(lines[j])
                j += 1
            if j >= n:
                raise ParseError(lineno, 'function %s has no closing "}" at column 1'
                                 % ((m or sm).group('name') or '<anonymous>'))
            if m:
                out.append(Stmt('python', lineno, name=m.group('name') or '__anonymous',
                                body=body, fakeroot=bool(m.group('fakeroot'))))
            else:
                out.append(Stmt('shell', lineno, name=sm.group('name'), body=body,
                                fakeroot=bool(sm.group('fakeroot'))))
            i = j + 1
            continue
        dm = DEF_RE.match(raw)
        if dm:
            body = [raw]
            j = i + 1
            while j < n and (lines[j].strip() == '' or lines[j][:1] in (' ', '\t')):
                body.append(lines[j])
                j += 1
            while body and body[-1].strip() == '':
                body.pop()
            out.append(Stmt('def', lineno, name=dm.group('name'), body=body))
            i = j
            continue
        text_, j = _logical_lines(lines, i)
        flat = text_.strip()
        dirm = DIRECTIVE_RE.match(flat)
        am = ASSIGN_RE.match(flat)
        if dirm and not am:
            out.append(Stmt('directive', lineno, kw=dirm.group('kw'),
                            args=dirm.group('args').replace('\n', ' ').strip()))
        elif am:
            value = am.group('value').strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in '"\'':
                value = value[1:-1]
            elif value and value[0] in '"\'':
                raise ParseError(lineno, 'unterminated quoted value for %s' % am.group('name'))
            elif value:
                raise ParseError(lineno, 'value of %s must be quoted' % am.group('name'))
            out.append(Stmt('assign', lineno, name=am.group('name'), flag=am.group('flag'),
                            op=am.group('op'), value=value, export=bool(am.group('export'))))
        elif EXPORT_RE.match(flat):
            em = EXPORT_RE.match(flat)
            out.append(Stmt('export', lineno, name=em.group(2)))
        else:
            raise ParseError(lineno, 'cannot parse: %s' % flat.split('\n')[0][:80])
        i = j
    return out


def inline_python(value):
    """Yields the source of every ${@...} expression in value (brace-matched)."""
    pos = 0
    while True:
        k = value.find('${@', pos)
        if k < 0:
            return
        depth = 1
        j = k + 3
        quote = None
        while j < len(value) and depth:
            c = value[j]
            if quote:
                if c == '\\':
                    j += 1
                elif c == quote:
                    quote = None
            elif c in '"\'':
                quote = c
            elif c == '{':
                depth += 1
            elif c == '}':
                depth -= 1
            j += 1
        yield value[k + 3:j - 1] if depth == 0 else None
        pos = j


def strip_inline_python(value):
    """Replaces each ${@...} with a placeholder word (for shell syntax checks)."""
    out = []
    pos = 0
    while True:
        k = value.find('${@', pos)
        if k < 0:
            out.append(value[pos:])
            return ''.join(out)
        out.append(value[pos:k])
        depth = 1
        j = k + 3
        while j < len(value) and depth:
            if value[j] == '{':
                depth += 1
            elif value[j] == '}':
                depth -= 1
            j += 1
        out.append('PYEXPR')
        pos = j
