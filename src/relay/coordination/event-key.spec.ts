import { eventKey } from './event-key';

const IDS = ['x-github-delivery', 'x-gitlab-event-uuid', 'x-gitea-delivery'];

describe('eventKey', () => {
  it('names an event by its delivery id, whatever else differs between the replicas that received it', () => {
    const a = eventKey(
      'POST',
      '/hook',
      ['X-GitHub-Delivery', 'abc', 'Host', 'pod-a:8080', 'X-Forwarded-For', '10.0.0.1'],
      Buffer.from('{"a":1}'),
      IDS,
    );
    const b = eventKey('POST', '/hook', ['host', 'pod-b:8080', 'x-github-delivery', 'abc'], Buffer.from('{"a":1}'), IDS);
    expect(a).toBe(b);
    expect(a).toMatch(/^id:[A-Za-z0-9_-]{43}$/);
  });

  it('tells different delivery ids, and the same value under different senders, apart', () => {
    const base = eventKey('POST', '/', ['X-GitHub-Delivery', 'abc'], null, IDS);
    expect(eventKey('POST', '/', ['X-GitHub-Delivery', 'abd'], null, IDS)).not.toBe(base);
    expect(eventKey('POST', '/', ['X-Gitea-Delivery', 'abc'], null, IDS)).not.toBe(base);
  });

  it('takes the first header of the configured order when several are present', () => {
    const both = eventKey('POST', '/', ['X-Gitea-Delivery', 'g1', 'X-GitHub-Delivery', 'h1'], null, IDS);
    expect(both).toBe(eventKey('POST', '/', ['X-GitHub-Delivery', 'h1'], null, IDS));
  });

  it('without a delivery id, digests method, target, event headers and body, and nothing else', () => {
    const body = Buffer.from('{"object_kind":"push"}');
    const a = eventKey('POST', '/hook?x=1', ['X-Custom-Event', 'push', 'Host', 'a', 'X-Forwarded-For', '1.2.3.4'], body, IDS);
    expect(a).toMatch(/^digest:/);
    expect(eventKey('POST', '/hook?x=1', ['Host', 'b', 'x-custom-event', 'push'], body, IDS)).toBe(a);
    expect(eventKey('POST', '/hook?x=2', ['X-Custom-Event', 'push'], body, IDS)).not.toBe(a);
    expect(eventKey('PUT', '/hook?x=1', ['X-Custom-Event', 'push'], body, IDS)).not.toBe(a);
    expect(eventKey('POST', '/hook?x=1', ['X-Custom-Event', 'tag'], body, IDS)).not.toBe(a);
    expect(eventKey('POST', '/hook?x=1', ['X-Custom-Event', 'push'], Buffer.from('{"object_kind":"tag"}'), IDS)).not.toBe(a);
  });

  it('keeps keys one size however long a sender makes its id', () => {
    expect(eventKey('POST', '/', ['X-GitHub-Delivery', 'x'.repeat(10_000)], null, IDS).length).toBe(46);
  });
});
