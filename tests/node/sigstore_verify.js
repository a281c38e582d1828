#!/usr/bin/env node
// Verifies a Sigstore bundle offline with sigstore-js (@sigstore/verify) against the trusted
// root of a client trust config.
//
//   node sigstore_verify.js --trust-config trust_config.json --bundle B --identity EMAIL
//                           --issuer URL --artifact FILE
//
// A bundle with a DSSE envelope is verified as an attestation (its in-toto subject digest must
// be the artifact's); any other as a signature over the artifact. Every time source must
// verify (the log's and each RFC 3161 timestamp); the summary lists them. Prints {"verified": ...} and
// exits 0, or prints {"refused": "<sigstore-js's code and message>"} and exits 1.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const { parseArgs } = require('node:util');
const { bundleFromJSON } = require('@sigstore/bundle');
const { TrustedRoot } = require('@sigstore/protobuf-specs');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');

const { values: args } = parseArgs({
  options: {
    'trust-config': { type: 'string' },
    bundle: { type: 'string' },
    identity: { type: 'string' },
    issuer: { type: 'string' },
    artifact: { type: 'string' },
  },
});
for (const name of ['trust-config', 'bundle', 'identity', 'issuer', 'artifact']) {
  if (!args[name]) {
    console.error(`sigstore_verify.js: --${name} is required`);
    process.exit(2);
  }
}

const config = JSON.parse(fs.readFileSync(args['trust-config'], 'utf8'));
if (config.mediaType !== 'application/vnd.dev.sigstore.clienttrustconfig.v0.1+json') {
  console.error(`sigstore_verify.js: not a client trust config: ${config.mediaType}`);
  process.exit(2);
}
const artifact = fs.readFileSync(args.artifact);
const artifactSha256 = crypto.createHash('sha256').update(artifact).digest('hex');

try {
  const trustMaterial = toTrustMaterial(TrustedRoot.fromJSON(config.trustedRoot));
  // One log entry and one SCT required, as the public good instance's clients do.
  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(args.bundle, 'utf8')));
  // Every time source the bundle carries must verify: the log's integrated time and each
  // RFC 3161 timestamp.
  const tsaTimestamps = bundle.verificationMaterial.timestampVerificationData?.rfc3161Timestamps
    ?.length ?? 0;
  const verifier = new Verifier(trustMaterial, {
    tlogThreshold: 1,
    ctlogThreshold: 1,
    timestampThreshold: 1 + tsaTimestamps,
  });
  const policy = {
    subjectAlternativeName: args.identity,
    extensions: { issuer: args.issuer },
  };
  let result;
  if (bundle.content.$case === 'dsseEnvelope') {
    verifier.verify(toSignedEntity(bundle), policy);
    const envelope = bundle.content.dsseEnvelope;
    const statement = JSON.parse(envelope.payload.toString('utf8'));
    const digests = statement.subject.map((s) => s.digest.sha256);
    if (!digests.includes(artifactSha256)) {
      throw new Error("the statement's subject is not the artifact");
    }
    result = { payload_type: envelope.payloadType, predicate_type: statement.predicateType };
  } else {
    verifier.verify(toSignedEntity(bundle, artifact), policy);
    result = { artifact_sha256: artifactSha256 };
  }
  result.times = ['transparency-log', ...Array(tsaTimestamps).fill('timestamp-authority')].sort();
  console.log(JSON.stringify({ verified: result }));
} catch (e) {
  const code = e.code ? `${e.code}: ` : '';
  console.log(JSON.stringify({ refused: `${e.name}: ${code}${e.message}` }));
  process.exit(1);
}
