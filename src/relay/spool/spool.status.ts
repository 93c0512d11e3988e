import { Injectable } from '@nestjs/common';
import type { FeaturePart } from '../../management/feature-part';
import { Spool } from './spool';

/** The spool's part of /status: its size and age at a glance (GET /spool has the queues). */
@Injectable()
export class SpoolStatus implements FeaturePart {
  readonly key = 'spool';

  constructor(private readonly spool: Spool) {}

  status() {
    return this.spool.figures();
  }
}
