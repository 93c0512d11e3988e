import { Injectable } from '@nestjs/common';
import { InjectSettings } from '../config/settings';
import type { ConnectionsConfig } from '../config/sidecar-config';
import type { FeaturePart } from '../management/feature-part';
import { toAnswer } from './activity';
import { ConnectionsService } from './connections.service';

/** Connection activity's part of /status: the last scheduled or requested read (GET /connections reads afresh). */
@Injectable()
export class ConnectionsStatus implements FeaturePart {
  readonly key = 'connections';
  readonly feature: number[];

  constructor(
    private readonly connections: ConnectionsService,
    @InjectSettings('connections') config: ConnectionsConfig,
  ) {
    this.feature = config.ports;
  }

  status() {
    const activity = this.connections.last;
    return activity ? toAnswer(activity, Date.now()) : null;
  }
}
