# Offline validation of kas/**/*.yaml: kas 4.x's own loader (schema + include merge, no network)
# plus our rules: format version, no duplicate keys, pinned repos, machine/distro/target exist.
"""kas config check. check(root, kas_lib) -> (findings, number_of_files)."""

import glob
import logging
import os
import sys

import yaml

import known
import layerlint

# The kas config format our users' kas-container (kas 4.x) reads; upstream uses the same.
KAS_FORMAT = 16


class _DupKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key repeated in one mapping (YAML allows it; kas keeps the
    last value silently, which is how upstream lost a local_conf_header block)."""


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, 'duplicate key "%s" (first on line %d)' % (key, seen[key] + 1),
                key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_DupKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage().replace('\n', ' '))


def _load_kas(kas_lib):
    sys.path.insert(0, kas_lib)
    import kas  # noqa: F401  (imported from kas_lib)
    from kas.context import create_global_context
    from kas.includehandler import IncludeHandler

    create_global_context(type('Args', (), {})())
    return kas, IncludeHandler


def _local_layers(root, cfg):
    """Directories of the layers that come from this repository (repos without url/path)."""
    out = []
    for name, repo in (cfg.get('repos') or {}).items():
        repo = repo or {}
        if repo.get('url') or repo.get('path'):
            continue
        for layer in (repo.get('layers') or {'.': None}):
            out.append((name, os.path.normpath(os.path.join(root, layer))))
    return out


def _recipe_exists(layers, target):
    for _, ldir in layers:
        pats = [os.path.join(ldir, 'recipes-*', '*', target + '.bb'),
                os.path.join(ldir, 'recipes-*', '*', target + '_*.bb')]
        if any(glob.glob(p) for p in pats):
            return True
    return False


# Keys kas added after format 16 (kas-format-changelog(1) of the kas package): a format-16 file
# using them would be read by our kas 4.8.1 but not by an older kas 4.x that accepts format 16.
NEWER_TOP_KEYS = {'artifacts': 17, 'signers': 19}
NEWER_REPO_KEYS = {'signed': 19, 'allowed_signers': 19}


def check_format_keys(rel, raw, findings):
    """Keys newer than KAS_FORMAT, and the deprecated refspec, in one file as written."""
    if not isinstance(raw, dict):
        return
    for key, since in NEWER_TOP_KEYS.items():
        if key in raw:
            findings.append('%s: "%s" needs kas format %d; our files are format %d'
                            % (rel, key, since, KAS_FORMAT))
    repos = dict(raw.get('repos') or {})
    defaults = ((raw.get('defaults') or {}).get('repos')) or {}
    for name, repo in list(repos.items()) + [('defaults', defaults)]:
        repo = repo or {}
        for key, since in NEWER_REPO_KEYS.items():
            if key in repo:
                findings.append('%s: repo %s: "%s" needs kas format %d' % (rel, name, key, since))
        for key in ('tag', 'branch'):
            if key in repo and repo[key] is None:
                findings.append('%s: repo %s: "%s: null" needs kas format 18' % (rel, name, key))
        if 'refspec' in repo:
            findings.append('%s: repo %s: "refspec" is deprecated since format 14; use commit/'
                            'branch' % (rel, name))


def check_config(root, path, rel, cfg, findings, all_layers):
    """Our rules on one merged config (the file plus everything it includes). A fragment that
    does not name our repository is checked against the layers the other configs name."""
    repos = cfg.get('repos') or {}
    for name, repo in repos.items():
        repo = repo or {}
        if repo.get('url') and not repo.get('commit'):
            findings.append('%s: repo %s is not pinned: give "commit:"' % (rel, name))
    layers = _local_layers(root, cfg)
    for name, ldir in layers:
        if not os.path.exists(os.path.join(ldir, 'conf', 'layer.conf')):
            findings.append('%s: repo %s lists layer %s, which has no conf/layer.conf'
                            % (rel, name, os.path.relpath(ldir, root)))
    complete = bool(layers)
    if not complete:
        layers = all_layers
    machine = cfg.get('machine')
    if machine:
        if os.path.basename(os.path.dirname(path)) == 'machines':
            stem = os.path.splitext(os.path.basename(path))[0]
            if machine != stem and os.path.realpath(path).endswith(
                    os.path.join('machines', stem + '.yaml')):
                findings.append('%s: machine file for %s sets machine "%s"'
                                % (rel, stem, machine))
        ours = any(os.path.exists(os.path.join(l, 'conf', 'machine', machine + '.conf'))
                   for _, l in layers)
        if not ours:
            provider = known.MACHINES.get(machine)
            if provider is None:
                findings.append('%s: machine "%s" is neither in our layer nor a known machine'
                                % (rel, machine))
            elif complete and provider not in repos:
                findings.append('%s: machine "%s" needs repo %s, which this config lacks'
                                % (rel, machine, provider))
    distro = cfg.get('distro')
    if distro:
        ours = any(os.path.exists(os.path.join(l, 'conf', 'distro', distro + '.conf'))
                   for _, l in layers)
        if not ours and distro not in known.DISTROS:
            findings.append('%s: distro "%s" is neither in our layer nor a known distro'
                            % (rel, distro))
    targets = cfg.get('target') or []
    if isinstance(targets, str):
        targets = [targets]
    for t in targets:
        t = t.split(':')[-1]
        if not _recipe_exists(layers, t) and t not in known.TARGETS:
            findings.append('%s: target "%s" is not a recipe of our layer nor a known target'
                            % (rel, t))
    for key, text in (cfg.get('local_conf_header') or {}).items():
        layerlint.lint_conf_text(text or '', '%s: local_conf_header.%s' % (rel, key), findings)
    if rel.startswith(os.path.join('kas', 'release') + os.sep):
        for key in ('machine', 'distro', 'target'):
            if not cfg.get(key):
                findings.append('%s: release config sets no %s' % (rel, key))


def check(root, kas_lib):
    findings = []
    try:
        kas, IncludeHandler = _load_kas(kas_lib)
    except Exception as e:  # any import problem means no validation: fail loudly
        return ['kas: cannot import kas from %s: %s' % (kas_lib, e)], 0
    if int(kas.__version__.split('.')[0]) < 4:
        return ['kas: version %s at %s; need kas 4.x' % (kas.__version__, kas_lib)], 0

    collect = _Collect()
    logging.getLogger().addHandler(collect)
    files = sorted(glob.glob(os.path.join(root, 'kas', '**', '*.yml'), recursive=True)
                   + glob.glob(os.path.join(root, 'kas', '**', '*.yaml'), recursive=True))
    if not files:
        findings.append('kas: no kas/*.yaml files under %s' % root)
    results = []
    for path in files:
        rel = os.path.relpath(path, root)
        try:
            with open(path) as f:
                raw = yaml.load(f, Loader=_DupKeyLoader)
        except yaml.YAMLError as e:
            findings.append('%s: %s' % (rel, str(e).replace('\n', ' ')))
            continue
        check_format_keys(rel, raw, findings)
        version = ((raw or {}).get('header') or {}).get('version')
        if version != KAS_FORMAT:
            findings.append('%s: header.version is %r; our configs use format %d (kas 4.x)'
                            % (rel, version, KAS_FORMAT))
        collect.messages.clear()
        try:
            cfg, missing = IncludeHandler([path]).get_config(repos={})
        except Exception as e:
            detail = '; '.join(collect.messages)
            findings.append('%s: kas rejects it: %s%s' % (rel, e, (' (' + detail + ')')
                                                          if detail else ''))
            continue
        if missing:
            findings.append('%s: includes from repos kas would fetch: %s'
                            % (rel, ', '.join(missing)))
        results.append((path, rel, cfg))
    all_layers = sorted({l for _, _, cfg in results for l in _local_layers(root, cfg)})
    for path, rel, cfg in results:
        check_config(root, path, rel, cfg, findings, all_layers)
    logging.getLogger().removeHandler(collect)
    return findings, len(files)
