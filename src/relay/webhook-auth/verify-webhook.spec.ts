import { createHmac } from 'node:crypto';
import { SecretSet } from './secret-set';
import { verifyWebhook } from './verify-webhook';

const SECRET = 'it-is-a-secret';
const OTHER = 'another-secret-entirely';
const STANDARD_KEY = Buffer.from('standard-webhooks-key-32-bytes!!');
const WHSEC = `whsec_${STANDARD_KEY.toString('base64')}`;
const NOW = 1_760_000_000_000;
const TOLERANCE = 300_000;

const body = Buffer.from('{"action":"opened","title":"caf\u00e9","n":12345678901234567890}', 'utf8');
const hex = (key: string | Buffer, data: Buffer) => createHmac('sha256', key).update(data).digest('hex');
const set = (...secrets: string[]) => new SecretSet(secrets);
const verify = (headers: string[], b: Buffer | null = body, secrets = set(SECRET), now = NOW) =>
  verifyWebhook(headers, b, secrets, now, TOLERANCE);

function standardHeaders(id: string, ts: number, b: Buffer, key = STANDARD_KEY): string[] {
  const sig = createHmac('sha256', key).update(`${id}.${ts}.`).update(b).digest('base64');
  return ['webhook-id', id, 'webhook-timestamp', String(ts), 'webhook-signature', `v1,${sig}`];
}

describe('verifyWebhook', () => {
  describe.each([
    ['github', 'X-Hub-Signature-256', (b: Buffer, k: string) => `sha256=${hex(k, b)}`, ['X-GitHub-Event', 'push']],
    ['bitbucket', 'X-Hub-Signature', (b: Buffer, k: string) => `sha256=${hex(k, b)}`, ['X-Event-Key', 'repo:push']],
    ['gitea', 'X-Gitea-Signature', (b: Buffer, k: string) => hex(k, b), ['X-Gitea-Event', 'push']],
    ['forgejo', 'X-Forgejo-Signature', (b: Buffer, k: string) => hex(k, b), ['X-Forgejo-Event', 'push']],
  ] as const)('%s (%s)', (sender, header, sign, hint) => {
    it('accepts a body signed with the secret', () => {
      expect(verify([...hint, header, sign(body, SECRET)])).toEqual({ ok: true, sender });
    });

    it('accepts the header name in any case', () => {
      expect(verify([...hint, header.toLowerCase(), sign(body, SECRET)])).toEqual({ ok: true, sender });
    });

    it('refuses a tampered body (one byte changed), and says a JSON body may have been re-serialised', () => {
      const tampered = Buffer.from(body);
      tampered[tampered.length - 2] ^= 1;
      const v = verify([...hint, header, sign(body, SECRET)], tampered);
      expect(v).toMatchObject({ ok: false, reason: 'bad_signature', sender, maybeReserialised: true });
    });

    it('refuses a body re-serialised by JSON.stringify(JSON.parse(body)) (the large number loses digits)', () => {
      const reserialised = Buffer.from(JSON.stringify(JSON.parse(body.toString('utf8'))));
      expect(reserialised.equals(body)).toBe(false);
      expect(verify([...hint, header, sign(body, SECRET)], reserialised)).toMatchObject({
        ok: false,
        reason: 'bad_signature',
        maybeReserialised: true,
      });
    });

    it('refuses a signature made with another secret; a non-JSON body gets no re-serialisation hint', () => {
      const plain = Buffer.from('payload=not-json');
      const v = verify([...hint, header, sign(plain, OTHER)], plain);
      expect(v).toMatchObject({ ok: false, reason: 'bad_signature', sender });
      expect(v).not.toHaveProperty('maybeReserialised');
    });

    it('refuses the event without the header, naming the sender its other headers give', () => {
      expect(verify([...hint])).toMatchObject({ ok: false, reason: 'missing_signature', sender });
    });

    it('accepts every configured line: old and new secret during a rotation', () => {
      const rotated = set(OTHER, SECRET);
      expect(verify([...hint, header, sign(body, SECRET)], body, rotated)).toEqual({ ok: true, sender });
      expect(verify([...hint, header, sign(body, OTHER)], body, rotated)).toEqual({ ok: true, sender });
      // Once the old line is removed, its signatures are refused.
      expect(verify([...hint, header, sign(body, SECRET)], body, set(OTHER))).toMatchObject({ ok: false, reason: 'bad_signature' });
    });

    it('refuses a value that is not 64 hex digits, and the header given twice', () => {
      const good = sign(body, SECRET);
      expect(verify([...hint, header, good.slice(0, -1)])).toMatchObject({ ok: false, reason: 'malformed_signature' });
      expect(verify([...hint, header, `${good.slice(0, -1)}g`])).toMatchObject({ ok: false, reason: 'malformed_signature' });
      expect(verify([...hint, header, good, header, good])).toMatchObject({ ok: false, reason: 'malformed_signature' });
    });

    it('verifies an empty body as zero bytes', () => {
      expect(verify([...hint, header, sign(Buffer.alloc(0), SECRET)], null)).toEqual({ ok: true, sender });
    });
  });

  it("refuses sha1 (GitHub's legacy X-Hub-Signature) as an unsupported scheme", () => {
    const sha1 = createHmac('sha1', SECRET).update(body).digest('hex');
    expect(verify(['X-GitHub-Event', 'push', 'X-Hub-Signature', `sha1=${sha1}`])).toMatchObject({
      ok: false,
      reason: 'unsupported_scheme',
      sender: 'github',
    });
    // With both, the sha256 one is the proof.
    expect(verify(['X-Hub-Signature', `sha1=${sha1}`, 'X-Hub-Signature-256', `sha256=${hex(SECRET, body)}`])).toEqual({
      ok: true,
      sender: 'github',
    });
  });

  it("checks the first proof in its order when several are present (Gitea sends its own and GitHub's)", () => {
    const headers = ['X-Gitea-Signature', hex(OTHER, body), 'X-Hub-Signature-256', `sha256=${hex(SECRET, body)}`];
    expect(verify(headers)).toMatchObject({ ok: false, reason: 'bad_signature', sender: 'gitea' });
    expect(verify(['X-Forgejo-Signature', hex(SECRET, body), 'X-Gitea-Signature', hex(OTHER, body)])).toEqual({
      ok: true,
      sender: 'forgejo',
    });
  });

  describe('gitlab (X-Gitlab-Token)', () => {
    it('accepts a token equal to a configured line, and either line of a rotation', () => {
      expect(verify(['X-Gitlab-Event', 'Push Hook', 'X-Gitlab-Token', SECRET])).toEqual({ ok: true, sender: 'gitlab' });
      expect(verify(['X-Gitlab-Token', OTHER], body, set(OTHER, SECRET))).toEqual({ ok: true, sender: 'gitlab' });
    });

    it('refuses another token, a prefix of the secret, and no token; the body is not what is checked', () => {
      expect(verify(['X-Gitlab-Token', OTHER])).toMatchObject({ ok: false, reason: 'bad_signature', sender: 'gitlab' });
      expect(verify(['X-Gitlab-Token', SECRET.slice(0, -1)])).toMatchObject({ ok: false, reason: 'bad_signature' });
      expect(verify(['X-Gitlab-Event', 'Push Hook'])).toMatchObject({ ok: false, reason: 'missing_signature', sender: 'gitlab' });
      const v = verify(['X-Gitlab-Token', OTHER]);
      expect(v).not.toHaveProperty('maybeReserialised');
    });
  });

  describe('Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature)', () => {
    const ts = NOW / 1000;
    const secrets = set(WHSEC);

    it('accepts a v1 signature over id.timestamp.body with the whsec_ key', () => {
      expect(verify(standardHeaders('msg_1', ts, body), body, secrets)).toEqual({ ok: true, sender: 'standard' });
    });

    it('accepts when one of several signatures matches (the sender rotating its own key)', () => {
      const h = standardHeaders('msg_1', ts, body);
      const bogus = createHmac('sha256', 'x').update('y').digest('base64');
      h[5] = `v1,${bogus} ${h[5]} v1a,ignored`;
      expect(verify(h, body, secrets)).toEqual({ ok: true, sender: 'standard' });
    });

    it('refuses a tampered body, another id, another key', () => {
      expect(verify(standardHeaders('msg_1', ts, body), Buffer.from('{}'), secrets)).toMatchObject({
        ok: false,
        reason: 'bad_signature',
        maybeReserialised: true,
      });
      const h = standardHeaders('msg_1', ts, body);
      h[1] = 'msg_2';
      expect(verify(h, body, secrets)).toMatchObject({ ok: false, reason: 'bad_signature' });
      expect(verify(standardHeaders('msg_1', ts, body, Buffer.from('other key')), body, secrets)).toMatchObject({
        ok: false,
        reason: 'bad_signature',
      });
    });

    it('refuses a timestamp outside the tolerance, in the past or the future, and accepts one just inside', () => {
      expect(verify(standardHeaders('m', ts - 301, body), body, secrets)).toMatchObject({ ok: false, reason: 'stale_timestamp' });
      expect(verify(standardHeaders('m', ts + 301, body), body, secrets)).toMatchObject({ ok: false, reason: 'stale_timestamp' });
      expect(verify(standardHeaders('m', ts - 299, body), body, secrets)).toEqual({ ok: true, sender: 'standard' });
    });

    it('accepts a rotated whsec_ list; lines without the prefix do not count as Standard Webhooks keys', () => {
      const newKey = Buffer.from('the new key');
      const rotated = set(`whsec_${newKey.toString('base64')}`, WHSEC);
      expect(verify(standardHeaders('m', ts, body), body, rotated)).toEqual({ ok: true, sender: 'standard' });
      expect(verify(standardHeaders('m', ts, body, newKey), body, rotated)).toEqual({ ok: true, sender: 'standard' });
      expect(verify(standardHeaders('m', ts, body), body, set(SECRET))).toMatchObject({
        ok: false,
        reason: 'bad_signature',
        message: expect.stringContaining('no whsec_'),
      });
    });

    it('refuses incomplete or malformed headers', () => {
      const h = standardHeaders('m', ts, body);
      expect(verify(h.slice(2), body, secrets)).toMatchObject({ ok: false, reason: 'malformed_signature', sender: 'standard' });
      expect(verify(['webhook-id', 'm', 'webhook-timestamp', 'soon', 'webhook-signature', h[5]], body, secrets)).toMatchObject({
        reason: 'malformed_signature',
      });
      expect(verify(['webhook-id', 'm', 'webhook-timestamp', String(ts), 'webhook-signature', 'v1,short'], body, secrets)).toMatchObject({
        reason: 'malformed_signature',
      });
      expect(verify(['webhook-id', 'm', 'webhook-timestamp', String(ts), 'webhook-signature', 'v1a,abc'], body, secrets)).toMatchObject({
        reason: 'unsupported_scheme',
      });
      expect(verify([...h, 'webhook-id', 'again'], body, secrets)).toMatchObject({ reason: 'malformed_signature' });
    });
  });

  it('refuses an event with no proof at all as missing_signature from an unknown sender', () => {
    expect(verify(['Content-Type', 'application/json'])).toMatchObject({ ok: false, reason: 'missing_signature', sender: 'unknown' });
  });

  it('never puts the signature or the secret in its message', () => {
    const sig = `sha256=${hex(OTHER, body)}`;
    const v = verify(['X-Hub-Signature-256', sig]);
    expect(v.ok).toBe(false);
    const text = JSON.stringify(v);
    expect(text).not.toContain(sig.slice(7));
    expect(text).not.toContain(SECRET);
  });
});
