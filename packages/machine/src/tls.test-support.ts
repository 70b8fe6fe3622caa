/**
 * Test-only: a throw-away CA with a server and a client certificate in QEMU's `tls-creds-x509`
 * directory layout, made with the `openssl` CLI (spawned with argument arrays). EC P-256 keys
 * keep it fast. Not part of the published package.
 */
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function openssl(cwd: string, ...args: string[]): Promise<void> {
  await run('openssl', args, { cwd });
}

const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A self-signed CA in `dir` (`ca-cert.pem`, `ca-key.pem`). */
export async function makeCa(dir: string, name: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await openssl(
    dir,
    'req',
    '-x509',
    ...KEY,
    '-keyout',
    'ca-key.pem',
    '-out',
    'ca-cert.pem',
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
}

/**
 * `<role>-cert.pem` and `<role>-key.pem` in `dir`, signed by the CA in `caDir`; a server
 * certificate names 127.0.0.1 and localhost.
 */
export async function makeCert(
  dir: string,
  caDir: string,
  role: 'server' | 'client',
  serial: number,
): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ext = path.join(dir, `${role}.ext`);
  await writeFile(
    ext,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      `extendedKeyUsage=${role === 'server' ? 'serverAuth' : 'clientAuth'}`,
      ...(role === 'server' ? ['subjectAltName=IP:127.0.0.1,DNS:localhost'] : []),
      '',
    ].join('\n'),
  );
  await openssl(
    dir,
    'req',
    '-new',
    ...KEY,
    '-keyout',
    `${role}-key.pem`,
    '-out',
    `${role}.csr`,
    '-subj',
    `/CN=qmpkit-test-${role}`,
  );
  await openssl(
    dir,
    'x509',
    '-req',
    '-in',
    `${role}.csr`,
    '-CA',
    path.join(caDir, 'ca-cert.pem'),
    '-CAkey',
    path.join(caDir, 'ca-key.pem'),
    '-set_serial',
    String(serial),
    '-days',
    '2',
    '-extfile',
    ext,
    '-out',
    `${role}-cert.pem`,
  );
}

/**
 * `good`: CA + server + client certificates (both sides can use it). `wrongCa`: another CA
 * with a client certificate of its own (a source that trusts the wrong CA).
 */
export async function makeTlsDirs(root: string): Promise<{ good: string; wrongCa: string }> {
  const good = path.join(root, 'tls-good');
  const wrongCa = path.join(root, 'tls-wrong-ca');
  await makeCa(good, 'qmpkit-test-ca');
  await makeCert(good, good, 'server', 2);
  await makeCert(good, good, 'client', 3);
  await makeCa(wrongCa, 'qmpkit-other-ca');
  await makeCert(wrongCa, wrongCa, 'client', 4);
  return { good, wrongCa };
}
