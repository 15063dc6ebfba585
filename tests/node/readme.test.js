'use strict'
// Runs the example of bindings/node/README.md as it is written there.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

test('the README example runs and prints what it says', async () => {
  const readme = fs.readFileSync(path.join(__dirname, '..', '..', 'bindings', 'node', 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('## Example'))
  const code = /```js\n([\s\S]*?)```/.exec(section)[1]
  const logged = []
  const console = { log: (...args) => logged.push(args.join(' ')) }
  const req = (name) => require(name === 'libdat' ? '../../bindings/node' : name)
  const AsyncFunction = (async () => {}).constructor
  await new AsyncFunction('require', 'console', code)(req, console)
  assert.deepEqual(logged, ['hello world', 'world', '2 put /hello.txt'])
})
