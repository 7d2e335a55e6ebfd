# Command line of the offline layer check: lints recipes/ (layerlint) and validates kas/
# (kascheck); prints one line per finding and exits 1 if there is any.
"""Usage: main.py --root REPO [--kas-lib DIR]"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import kascheck  # noqa: E402
import layerlint  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description='offline check of the Yocto layer and kas configs')
    ap.add_argument('--root', required=True, help='repository root holding recipes/ and kas/')
    ap.add_argument('--kas-lib', help='dist-packages dir holding kas 4.x (kas/ package)')
    ap.add_argument('--only', choices=('layer', 'kas'), help='run one half only')
    a = ap.parse_args()

    root = os.path.abspath(a.root)
    findings = []
    nrecipes = 0
    if a.only in (None, 'layer'):
        layer = layerlint.Layer(os.path.join(root, 'recipes'))
        findings += [str(f) for f in layer.run()]
        nrecipes = len(layer.files('**/*.bb'))
    nkas = 0
    if a.only in (None, 'kas'):
        if not a.kas_lib:
            print('check-layer: --kas-lib is required for the kas check', file=sys.stderr)
            return 2
        kf, nkas = kascheck.check(root, a.kas_lib)
        findings += kf
    for f in findings:
        print(f)
    print('check-layer: %d recipes, %d kas files, %d problem(s)' % (nrecipes, nkas,
                                                                   len(findings)))
    return 1 if findings else 0


if __name__ == '__main__':
    sys.exit(main())
