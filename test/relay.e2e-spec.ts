import request from 'supertest';
import { RecordingServer } from './support/recording-server';
import { start } from './support/sidecar';

describe('relay (smoke)', () => {
  const downstream = new RecordingServer();
  let sidecar: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    await downstream.listen();
    sidecar = await start({ DOWNSTREAM_SERVICE_URL: `${downstream.url}/webhook` });
  });
  afterAll(async () => {
    await sidecar.close();
    await downstream.close();
  });

  it('relays a POST', async () => {
    const res = await request(sidecar.relayUrl).post('/x?y=1').set('content-type', 'text/plain').send('hi');
    expect(res.status).toBe(200);
    expect(downstream.requests.at(-1)!.url).toBe('/webhook/x?y=1');
  });
});
