// Used by: health-check, agent (upstream checks), metrics/remote-write (pushes, scrapes).

import type { AxiosInstance, CreateAxiosDefaults } from 'axios';

/**
 * An axios instance for the sidecar's own outbound calls (health check, agent upstreams,
 * remote write, scrapes). axios is loaded on the first call, so a sidecar with none of
 * those features on never loads it, nor the Node modules it pulls in.
 */
export function createHttpClient(config: CreateAxiosDefaults): AxiosInstance {
  const axios = (require('axios') as typeof import('axios')).default;
  return axios.create(config);
}
