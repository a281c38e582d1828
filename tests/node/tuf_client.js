#!/usr/bin/env node
// Reads a rootcellar TUF repository with tuf-js, a second TUF client beside python-tuf.
//
//   node tuf_client.js --repo REPO --root TRUSTED_ROOT --download-dir DIR NAME=EXPECTED_FILE...
//
// Serves REPO (metadata/ and targets/) over HTTP on 127.0.0.1 (an ephemeral port), bootstraps
// tuf-js's Updater with the root given out of band, refreshes the top-level metadata and
// downloads each named target, checking it against the file given. Prints a JSON summary and
// exits 0, or prints `tuf_client.js: <ErrorType>: <message>` on stderr and exits 1.
'use strict';

// The repository is on localhost; a proxy from the environment must not intercept it.
for (const name of ['http_proxy', 'https_proxy', 'all_proxy', 'HTTP_PROXY', 'HTTPS_PROXY',
  'ALL_PROXY']) {
  delete process.env[name];
}

const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { parseArgs } = require('node:util');
const { Updater } = require('tuf-js');

function serve(root) {
  const server = http.createServer((req, res) => {
    const relative = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = path.join(root, path.normalize(relative));
    if (!file.startsWith(root + path.sep)) {
      res.writeHead(403).end();
      return;
    }
    fs.readFile(file, (err, data) => {
      if (err) {
        res.writeHead(404).end();
      } else {
        res.writeHead(200, { 'Content-Length': data.length }).end(data);
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function main() {
  const { values: args, positionals } = parseArgs({
    options: {
      repo: { type: 'string' },
      root: { type: 'string' },
      'download-dir': { type: 'string' },
    },
    allowPositionals: true,
  });
  if (!args.repo || !args.root || !args['download-dir']) {
    throw new Error('--repo, --root and --download-dir are required');
  }
  const repo = fs.realpathSync(args.repo);
  const server = await serve(repo);
  const base = `http://127.0.0.1:${server.address().port}`;
  const metadataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tuf-js-'));
  try {
    // tuf-js bootstraps from root.json in its metadata directory.
    fs.copyFileSync(args.root, path.join(metadataDir, 'root.json'));
    fs.mkdirSync(args['download-dir'], { recursive: true });
    const updater = new Updater({
      metadataDir,
      metadataBaseUrl: `${base}/metadata`,
      targetDir: args['download-dir'],
      targetBaseUrl: `${base}/targets`,
    });
    await updater.refresh();
    const downloaded = {};
    for (const spec of positionals) {
      const at = spec.indexOf('=');
      const [name, expected] = [spec.slice(0, at), spec.slice(at + 1)];
      const info = await updater.getTargetInfo(name);
      if (!info) {
        throw new Error(`target ${JSON.stringify(name)} is not listed in the targets metadata`);
      }
      const file = await updater.downloadTarget(info, path.join(args['download-dir'], name));
      if (!fs.readFileSync(file).equals(fs.readFileSync(expected))) {
        throw new Error(`target ${JSON.stringify(name)} differs from ${expected}`);
      }
      downloaded[name] = { length: info.length, sha256: info.hashes.sha256 };
    }
    const read = (name) => JSON.parse(fs.readFileSync(path.join(metadataDir, name), 'utf8'));
    console.log(JSON.stringify({
      root_version: read('root.json').signed.version,
      timestamp_version: read('timestamp.json').signed.version,
      targets: downloaded,
    }, null, 2));
  } finally {
    server.close();
    fs.rmSync(metadataDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`tuf_client.js: ${e.name}: ${e.message}`);
  process.exit(1);
});
