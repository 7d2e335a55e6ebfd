// Second opinion on BitBake syntax: parses .bb/.bbappend/.bbclass/.inc/.conf files with the
// tree-sitter BitBake grammar (npm language-server-bitbake) and prints every ERROR/MISSING node.
// Usage: node tsparse.js NODE_MODULES_DIR FILE...   (prints "file:line:col: message"; exit 1 on any)
'use strict';
const path = require('path');
const fs = require('fs');

// Valid BitBake the grammar rejects (checked against BitBake's own parser rules): a '/' in a
// variable name (PREFERRED_PROVIDER_virtual/kernel) and the '=.' operator.
const ALLOWED = [
	/^\s*[A-Za-z0-9_${}:-]+\/[A-Za-z0-9_${}/:.-]*\s*(\?\?=|\?=|:=|\+=|=\+|\.=|=\.|=)/,
	/^\s*[A-Za-z0-9_${}:/-]+\s*=\.\s*"/,
];

async function main() {
	const [mods, ...files] = process.argv.slice(2);
	const Parser = require(path.join(mods, 'web-tree-sitter'));
	await Parser.init();
	const lang = await Parser.Language.load(
		path.join(mods, 'language-server-bitbake', 'tree-sitter-bitbake.wasm'));
	const parser = new Parser();
	parser.setLanguage(lang);
	let bad = 0;
	for (const f of files) {
		const src = fs.readFileSync(f, 'utf8');
		const lines = src.split('\n');
		const tree = parser.parse(src);
		const walk = (n) => {
			const missing = typeof n.isMissing === 'function' ? n.isMissing() : n.isMissing;
			if ((n.type === 'ERROR' || missing) && !ALLOWED.some((re) => re.test(lines[n.startPosition.row]))) {
				const what = missing ? `missing ${n.type}` : 'syntax error';
				const text = n.text.split('\n')[0].slice(0, 60);
				console.log(`${f}:${n.startPosition.row + 1}:${n.startPosition.column + 1}: ` +
					`${what} near "${text}"`);
				bad++;
				return;
			}
			for (let i = 0; i < n.childCount; i++) walk(n.child(i));
		};
		walk(tree.rootNode);
	}
	process.exit(bad ? 1 : 0);
}
main().catch((e) => { console.error(`tsparse: ${e.stack || e}`); process.exit(2); });
