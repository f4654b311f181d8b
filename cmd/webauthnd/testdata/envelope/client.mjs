// An independent client of webauthnd's sealed routes, built only from the wire format with
// Node's own crypto (createECDH + aes-256-gcm), as BlockID's SDKs use it.
// Usage: node client.mjs <base-url> <license-key>
// Prints one JSON line: what the server answered, decrypted.
import crypto from 'node:crypto';

const [base, license] = process.argv.slice(2);

const env = await (await fetch(`${base}/webauthn/environment`)).json();
const keys = await (await fetch(`${base}/webauthn/publickeys`)).json();

const ecdh = crypto.createECDH(env.ec_curve_name); // "secp256k1" or "prime256v1"
ecdh.generateKeys();
const serverPoint = Buffer.concat([Buffer.from([4]), Buffer.from(keys.publicKey, 'base64')]);
const shared = ecdh.computeSecret(serverPoint); // the x-coordinate, 32 bytes
const myPublic = ecdh.getPublicKey().subarray(1).toString('base64'); // X‖Y

const seal = (text) => {
  const iv = crypto.randomBytes(16);
  const c = crypto.createCipheriv('aes-256-gcm', shared, iv);
  const body = Buffer.concat([c.update(text, 'utf8'), c.final()]);
  return Buffer.concat([iv, body, c.getAuthTag()]).toString('base64');
};
const open = (token) => {
  const raw = Buffer.from(token, 'base64');
  const d = crypto.createDecipheriv('aes-256-gcm', shared, raw.subarray(0, 16));
  d.setAuthTag(raw.subarray(raw.length - 16));
  return Buffer.concat([d.update(raw.subarray(16, raw.length - 16)), d.final()]).toString('utf8');
};

const call = async (path, request) => {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      publickey: myPublic,
      licensekey: seal(license),
      requestid: seal(JSON.stringify({ ts: Math.floor(Date.now() / 1000), appid: 'node-interop', uuid: crypto.randomUUID() })),
    },
    body: JSON.stringify({ data: seal(JSON.stringify(request)) }),
  });
  const body = await res.json();
  return { status: res.status, body: res.ok ? JSON.parse(open(body.data)) : body };
};

const registration = await call('/webauthn/attestation/options',
  { dns: 'localhost', username: 'node-user', displayName: 'Node', communityId: 'default', tenantId: 'default' });
const signIn = await call('/webauthn/assertion/options', { dns: 'localhost', communityId: 'default' });
console.log(JSON.stringify({ curve: env.ec_curve_name, registration, signIn }));
