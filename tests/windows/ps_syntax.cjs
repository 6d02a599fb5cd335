// Parses PowerShell scripts with tree-sitter's PowerShell grammar and
// reports every ERROR or MISSING node (unbalanced braces, parentheses or
// quotes, a broken here-string, a stray token) as FILE:LINE:COL. This is a
// syntax check only: no PowerShell runs here (none is packaged for Debian
// or npm), so cmdlets, parameters and types are not checked; the windows
// workflow runs the scripts for real.
//
// Known grammar gap: a bare-word list as a command argument
// (`Format-Table Status, Name`) parses as an error; write
// `-Property @("Status", "Name")`.
//
// Usage: node ps_syntax.cjs NODE_MODULES_DIR FILE...   (exit 0 clean, 1 errors, 2 usage)
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { createRequire } = require('node:module');

async function main(argv) {
  if (argv.length < 2) {
    console.error('usage: ps_syntax.cjs NODE_MODULES_DIR FILE...');
    return 2;
  }
  const req = createRequire(path.join(path.resolve(argv[0]), 'noop.js'));
  const { Parser, Language } = req('web-tree-sitter');
  await Parser.init();
  const lang = await Language.load(req.resolve('tree-sitter-powershell/tree-sitter-powershell.wasm'));
  const parser = new Parser();
  parser.setLanguage(lang);
  let passed = 0;
  let failed = 0;
  for (const file of argv.slice(1)) {
    const tree = parser.parse(fs.readFileSync(file, 'utf8'));
    const errors = [];
    const walk = (node) => {
      if (node.isError || node.isMissing) {
        const what = node.isMissing ? `missing ${node.type}` : 'syntax error';
        const text = node.text.slice(0, 80).replace(/\s+/g, ' ');
        errors.push(`${file}:${node.startPosition.row + 1}:${node.startPosition.column + 1}: ${what}: ${text}`);
      } else if (node.hasError) {
        for (const child of node.children) walk(child);
      }
    };
    walk(tree.rootNode);
    if (tree.rootNode.hasError && errors.length === 0) errors.push(`${file}: syntax error`);
    tree.delete();
    if (errors.length === 0) {
      passed++;
      console.log(`ok   ${file}`);
      continue;
    }
    failed++;
    console.log(`FAIL ${file}`);
    for (const e of errors) console.log(`     ${e}`);
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then((rc) => process.exit(rc), (err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(2);
});
