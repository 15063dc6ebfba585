'use strict'
// Runs the JavaScript example of the repository's README (its store path moved to a temp dir).

const test = require('node:test')
const assert = require('node:assert')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

test('the root README example runs', async () => {
  const readme = fs.readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8')
  const start = readme.indexOf('## Node API')
  assert.ok(start >= 0, 'the README has a Node section')
  const m = /```js\n([\s\S]*?)```/.exec(readme.slice(start))
  assert.ok(m, 'the Node section has a js example')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'libdat-readme-'))
  const code = m[1]
    .replace("require('libdat')", `require(${JSON.stringify(path.join(__dirname, '..', '..', 'bindings', 'node'))})`)
    .replace("'/tmp/chat'", JSON.stringify(path.join(dir, 'chat')))
  const lines = []
  const log = (...args) => lines.push(args.join(' '))
  const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor
  await new AsyncFunction('console', 'require', code)({ log }, require)
  assert.deepStrictEqual(lines, ['/a.txt'])
  fs.rmSync(dir, { recursive: true, force: true })
})
